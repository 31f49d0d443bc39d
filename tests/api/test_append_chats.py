"""Several chats' posts in one append transaction: seqs, retries, refusals; no deadlock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from chatire.appender import Appender
from chatire.errors import Forbidden
from chatire.model import Appended, Chat, Post, User
from chatire.store import store_from_url
from tests.support.services import fresh_database

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _seq(result: Appended | Forbidden) -> tuple[int, bool] | str:
    return "forbidden" if isinstance(result, Forbidden) else (result.message.seq,
                                                              result.created)


@pytest_twisted.ensureDeferred
async def test_one_transaction_for_three_chats(db_url: str) -> None:
    store = store_from_url(db_url, reactor)
    await store.start()
    u1 = await store.create_user("one", "x", "One", NOW)
    u2 = await store.create_user("two", "x", "Two", NOW)
    a, b, c = [await store.create_chat(name * 22, "t", u1.id, NOW) for name in "abc"]
    for chat in (a, b):  # a join event each: seq 1
        assert (await store.add_member(chat, u2, NOW)).seq == 1  # type: ignore[union-attr]
    first = await store.append_chats([
        (a, [Post(u1.id, "a1", "k1"), Post(u2.id, "a2", "k2"), Post(u1.id, "again", "k1")]),
        (b, [Post(u2.id, "b1", None)]),
        (c, [Post(u2.id, "not a member", "k9"), Post(u1.id, "c1", "k3")]),
    ], NOW)
    assert [[_seq(r) for r in results] for results in first] == [
        [(2, True), (3, True), (2, False)], [(2, True)], ["forbidden", (1, True)]]
    assert first[0][2].message.message == "a1"  # type: ignore[union-attr]
    second = await store.append_chats([
        (a, [Post(u1.id, "retry", "k1")]), (c, [Post(u1.id, "c2", None)])], NOW)
    assert [[_seq(r) for r in results] for results in second] == [[(2, False)], [(2, True)]]
    last = {chat.uri: chat.last_seq for chat in (await store.list_chats(u1.id)).chats}
    assert last == {a.uri: 3, b.uri: 2, c.uri: 2}  # the retry's seq was given back
    page = await store.history(a, 0, None, 10)
    assert [(m.seq, m.message, m.user.id) for m in page.messages] == [
        (2, "a1", u1.id), (3, "a2", u2.id)]
    await store.stop()


@pytest.mark.postgres
@pytest_twisted.ensureDeferred
async def test_crossed_chat_sets_from_two_daemons_do_not_deadlock() -> None:
    with fresh_database() as pg:
        stores = [store_from_url(pg + "?pool=4", reactor) for _ in range(2)]
        await defer.gatherResults([s.start() for s in stores])
        user = await stores[0].create_user("w", "x", "W", NOW)
        chats = [await stores[0].create_chat(name * 22, "t", user.id, NOW) for name in "pqrs"]
        calls: list[Any] = []
        for i in range(40):
            order = chats if i % 2 else chats[::-1]
            calls.append(stores[i % 2].append_chats(
                [(chat, [Post(user.id, f"m{i}", None)]) for chat in order], NOW))
        await defer.gatherResults(calls)
        for chat in chats:
            page = await stores[0].history(chat, 0, None, 100)
            assert [m.seq for m in page.messages] == list(range(1, 41))
        for s in stores:
            await s.stop()


class _Recorder:
    """A store that records its calls and answers at once with fresh seqs."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.seqs: dict[str, int] = {}

    def _append(self, chat: Chat, posts: list[Post]) -> list[Appended | Forbidden]:
        out: list[Appended | Forbidden] = []
        for post in posts:
            self.seqs[chat.uri] = self.seqs.get(chat.uri, 0) + 1
            from chatire.model import Message

            out.append(Appended(Message(chat.uri, self.seqs[chat.uri], 1, User(1, "u", "u"),
                                        post.text, None, NOW), True))
        return out

    def append_messages(self, chat: Chat, posts: list[Post], now: Any) -> defer.Deferred[Any]:
        self.calls.append([chat.uri])
        return defer.succeed(self._append(chat, posts))

    def append_chats(self, batches: list[tuple[Chat, list[Post]]],
                     now: Any) -> defer.Deferred[Any]:
        self.calls.append([chat.uri for chat, _ in batches])
        return defer.succeed([self._append(chat, posts) for chat, posts in batches])


def test_the_appender_puts_waiting_chats_in_one_transaction() -> None:
    store = _Recorder()
    appender = Appender(store, lambda: NOW, max_in_flight=1)  # type: ignore[arg-type]
    user = User(1, "u", "u")
    chats = [Chat(i, f"{i}" * 22, "", user, NOW, 0) for i in range(1, 4)]
    hold: defer.Deferred[Any] = defer.Deferred()
    store.append_messages = lambda chat, posts, now: (  # type: ignore[method-assign]
        store.calls.append([chat.uri]) or hold.addCallback(lambda _: store._append(chat, posts)))
    seqs: list[int] = []
    appender.append(chats[0], Post(1, "first", None)).addCallback(
        lambda a: seqs.append(a.message.seq))
    for chat in chats:  # these wait: the only transaction slot is taken
        for k in range(2):
            appender.append(chat, Post(1, f"{chat.uri[0]}{k}", None)).addCallback(
                lambda a: seqs.append(a.message.seq))
    hold.callback(None)
    # The busy chat joins the queue after the others: its turn comes again last.
    assert store.calls == [[chats[0].uri], [chats[1].uri, chats[2].uri, chats[0].uri]]
    assert sorted(seqs) == [1, 1, 1, 2, 2, 2, 3]
