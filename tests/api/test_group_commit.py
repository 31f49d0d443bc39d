"""Group commit isolation: a post the store refuses fails alone; the others of its batch commit.

The offending posts reach the real store past ChatService's text rules (the appender is
called directly): a lone surrogate that neither SQLite nor psycopg2 can encode, and on
PostgreSQL a NUL, which the server cannot hold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, fail

from chatire.appender import Appender
from chatire.errors import Invalid, Unavailable
from chatire.interfaces import IStore
from chatire.model import Appended, Chat, Post
from chatire.store import store_from_url

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _offenders(db_url: str) -> list[str]:
    """Texts the store itself refuses: a lone surrogate anywhere, a NUL on PostgreSQL."""
    return ["bad \ud800"] + (["bad \x00"] if db_url.startswith("postgres") else [])


async def _settled(ds: list[Deferred[Appended]]) -> list[Appended | Exception]:
    out: list[Appended | Exception] = []
    for d in ds:
        try:
            out.append(await d)
        except Exception as e:
            out.append(e)
    return out


async def _setup(db_url: str, chats: int = 1) -> tuple[IStore, int, list[Chat]]:
    store = store_from_url(db_url, reactor)
    await store.start()
    user = await store.create_user("poster", "x", "Poster", NOW)
    made = [await store.create_chat(f"{i}" * 22, "t", user.id, NOW) for i in range(chats)]
    return store, user.id, made


async def _history(store: IStore, chat: Chat) -> list[tuple[int, str, str | None]]:
    page = await store.history(chat, 0, None, 100)
    return [(m.seq, m.message, m.client_id) for m in page.messages]


@pytest_twisted.ensureDeferred
async def test_a_refused_post_fails_alone_and_its_batch_commits_once(db_url: str) -> None:
    store, user, (chat,) = await _setup(db_url)
    appender = Appender(store, lambda: NOW, max_in_flight=1)
    bad = _offenders(db_url)
    # The first post is appended at once; the rest queue behind it and form one batch,
    # with the offenders in the middle and one client_id twice, far apart.
    texts: list[tuple[str, str | None]] = [("first", "k0")]
    texts += [(f"m{i}", f"k{i}") for i in range(1, 5)] + [(b, f"bad{i}") for i, b in
                                                           enumerate(bad)]
    texts += [(f"m{i}", f"k{i}") for i in range(5, 9)] + [("m1 again", "k1")]
    ds = [appender.append(chat, Post(user, text, key)) for text, key in texts]
    results = await _settled(ds)
    honest = [(t, k) for t, k in texts if not t.startswith("bad")]
    for (text, _), result in zip(texts, results, strict=True):
        if text.startswith("bad"):
            assert isinstance(result, Invalid), result
        else:
            assert isinstance(result, Appended), (text, result)
    stored = await _history(store, chat)
    assert stored == [(i + 1, t, k) for i, (t, k) in enumerate(honest[:-1])]
    first_k1 = results[texts.index(("m1", "k1"))]
    again = results[-1]
    assert isinstance(first_k1, Appended) and isinstance(again, Appended)
    assert first_k1.created and not again.created
    assert again.message.id == first_k1.message.id  # one message, confirmed to both
    created = [r for r in results if isinstance(r, Appended) and r.created]
    assert sorted(r.message.seq for r in created) == list(range(1, len(honest)))
    await appender.close()
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_a_refused_post_fails_alone_in_a_batch_of_several_chats(db_url: str) -> None:
    store, user, chats = await _setup(db_url, chats=3)
    appender = Appender(store, lambda: NOW, max_in_flight=1)
    bad = _offenders(db_url)
    first = appender.append(chats[0], Post(user, "first", None))  # takes the only slot
    ds: list[tuple[Chat, str, Deferred[Appended]]] = []
    for i in range(4):  # these three chats wait, then share one transaction
        for c, chat in enumerate(chats):
            text = bad[i % len(bad)] if (c, i) in {(1, 1), (2, 3)} else f"c{c} m{i}"
            ds.append((chat, text, appender.append(chat, Post(user, text, f"{c}-{i}"))))
    assert isinstance(await first, Appended)
    results = await _settled([d for _, _, d in ds])
    for (_, text, _), result in zip(ds, results, strict=True):
        assert isinstance(result, Invalid if text.startswith("bad") else Appended), result
    for c, chat in enumerate(chats):
        want = ["first"] * (c == 0) + [t for ch, t, _ in ds
                                       if ch is chat and not t.startswith("bad")]
        assert [text for _, text, _ in await _history(store, chat)] == want
        seqs = [m.message.seq for (ch, _, _), m in zip(ds, results, strict=True)
                if ch is chat and isinstance(m, Appended)]
        assert seqs == list(range(1 + (c == 0), len(want) + 1))  # in order, no gap
    await appender.close()
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_a_post_alone_that_the_store_refuses_is_invalid(db_url: str) -> None:
    store, user, (chat,) = await _setup(db_url)
    for text in _offenders(db_url):
        try:
            await store.append_messages(chat, [Post(user, text, None)], NOW)
        except Invalid as e:
            assert "cannot be stored" in e.message
        else:
            raise AssertionError(f"{text!r} was stored")
    await store.stop()


class _Down:
    """The real store behind a switch that makes appends unavailable; counts them."""

    def __init__(self, store: IStore) -> None:
        self._store = store
        self.down = False
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _append(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Deferred[Any]:
        self.calls += 1
        if self.down:
            return fail(Unavailable("the database cannot be reached right now"))
        return call(*args)  # type: ignore[return-value]

    def append_messages(self, *args: Any) -> Deferred[Any]:
        return self._append(self._store.append_messages, *args)

    def append_chats(self, *args: Any) -> Deferred[Any]:
        return self._append(self._store.append_chats, *args)


@pytest_twisted.ensureDeferred
async def test_an_unavailable_store_fails_the_batch_without_retrying(db_url: str) -> None:
    real, user, (chat,) = await _setup(db_url)
    store = _Down(real)
    appender = Appender(store, lambda: NOW, max_in_flight=1)  # type: ignore[arg-type]
    hold: Deferred[None] = Deferred()
    original = store.append_messages

    def held(*args: Any) -> Deferred[Any]:  # the first transaction ends when told
        store.append_messages = original  # type: ignore[method-assign]
        return hold.addCallback(lambda _: original(*args))

    store.append_messages = held  # type: ignore[method-assign]
    first = appender.append(chat, Post(user, "first", None))
    rest = [appender.append(chat, Post(user, f"m{i}", None)) for i in range(8)]
    store.down = True
    hold.callback(None)
    results = await _settled([first, *rest])
    assert all(isinstance(r, Unavailable) for r in results), results
    assert store.calls == 2  # the first post, then the batch once: no retry storm
    store.down = False
    await defer.gatherResults([appender.append(chat, Post(user, "back", None))])
    assert [text for _, text, _ in await _history(real, chat)] == ["back"]
    await real.stop()
