"""Delete erases from the store itself, and read state lives on the server: read_seq,
unread counts, the read frame to the user's other sockets, coalesced writes."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg2
import pytest_twisted
from twisted.internet.task import Clock

from chatire.config import Config
from chatire.readmarks import ReadMarks
from chatire.store.postgres import split_url
from tests.support.client import Api, Socket


def _every_text(db_url: str) -> str:
    """Every row of the tables that hold chat text, read straight from the database."""
    tables = ("messages", "events")
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as db:
            return repr([db.execute(f"SELECT * FROM {t}").fetchall() for t in tables])
    with psycopg2.connect(split_url(db_url)[0]) as db, db.cursor() as cur:
        rows = []
        for table in tables:
            cur.execute(f"SELECT * FROM {table}")
            rows.append(cur.fetchall())
        return repr(rows)


@pytest_twisted.ensureDeferred
async def test_a_delete_erases_the_text_and_every_edit_from_the_store(
        api: Api, config: Config) -> None:
    alice = await api.user()
    uri = await alice.new_chat()
    status, body = await alice.call("POST", f"/api/chats/{uri}/messages",
                                    {"message": "secret-one", "client_id": "k1"})
    seq = body["message"]["seq"]
    for text in ("secret-two", "secret-three"):
        assert (await alice.call("PATCH", f"/api/chats/{uri}/messages/{seq}",
                                 {"message": text}))[0] == 200
    assert "secret-three" in _every_text(config.db)
    assert (await alice.call("DELETE", f"/api/chats/{uri}/messages/{seq}"))[0] == 200
    assert "secret" not in _every_text(config.db)
    # The idempotency record is the message row: a retry finds the tombstone, not a copy.
    status, body = await alice.call("POST", f"/api/chats/{uri}/messages",
                                    {"message": "secret-one", "client_id": "k1"})
    assert status == 200 and body["message"]["deleted"] and body["message"]["message"] == ""
    assert "secret" not in _every_text(config.db)
    _, events = await alice.call("GET", f"/api/chats/{uri}/events")
    assert [e["seq"] for e in events["events"]] == [1, 2, 3, 4]  # the tombstone keeps seq 1


async def _chats(user: Any) -> dict[str, Any]:
    status, body = await user.call("GET", "/api/chats")
    assert status == 200
    return {c["uri"]: c for c in body["chats"]}


@pytest_twisted.ensureDeferred
async def test_read_seq_and_unread_come_from_the_server(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)  # bob joins at seq 1 and has read it
    mine = (await _chats(bob))[uri]
    assert (mine["role"], mine["read_seq"], mine["unread"]) == ("member", 1, 0)
    assert (await _chats(alice))[uri]["role"] == "owner"
    for i in range(5):
        await alice.post(uri, f"m{i}")  # seqs 2..6
    await bob.post(uri, "mine")  # seq 7: one's own messages are never unread
    await alice.call("DELETE", f"/api/chats/{uri}/messages/6")  # seq 8; deleted: not unread
    assert (await _chats(bob))[uri]["unread"] == 4
    assert (await bob.call("PUT", f"/api/chats/{uri}/read", {"seq": 3}))[0] == 204
    assert await _eventually_read(bob, uri, 3)
    assert (await _chats(bob))[uri]["unread"] == 2
    await bob.call("PUT", f"/api/chats/{uri}/read", {"seq": 2})  # lower: ignored
    await bob.call("PUT", f"/api/chats/{uri}/read", {"seq": 10**6})  # capped at last_seq
    assert await _eventually_read(bob, uri, 8)
    assert (await _chats(bob))[uri]["unread"] == 0
    _, details = await alice.call("GET", f"/api/chats/{uri}")
    assert {m["id"]: m["read_seq"] for m in details["members"]}[bob.id] == 8
    for bad in ({"seq": -1}, {"seq": "3"}, {}, {"seq": 2**63}):
        status, body = await bob.call("PUT", f"/api/chats/{uri}/read", bad)
        assert status == 400 and body["error"]["code"] == "invalid", bad


async def _eventually_read(user: Any, uri: str, seq: int) -> bool:
    """Whether read_seq reaches seq within two seconds (writes are coalesced briefly)."""
    from tests.support.daemons import sleep

    for _ in range(40):
        if (await _chats(user))[uri]["read_seq"] == seq:
            return True
        await sleep(0.05)
    return False


@pytest_twisted.ensureDeferred
async def test_a_read_frame_reaches_the_users_other_sockets_only(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    await alice.post(uri, "hello")
    phone = await Socket.open(api.base_url, bob.token)
    laptop = await Socket.open(api.base_url, bob.token)
    other = await Socket.open(api.base_url, alice.token)
    for sock in (phone, laptop, other):
        await sock.subscribe(uri)
    phone.send({"type": "read", "chat": uri, "seq": 2})
    assert await laptop.next_of("read", timeout=1.0) == {"type": "read", "chat": uri, "seq": 2}
    # Not the socket that read (its next frame is the answer to a bad read frame, not a
    # read sent with the laptop's), not another user.
    phone.send({"type": "read", "chat": uri, "seq": "x"})
    assert (await phone.next())["code"] == "invalid"
    await bob.call("PUT", f"/api/chats/{uri}/read", {"seq": 2})  # no change: still told
    assert (await phone.next_of("read", timeout=1.0))["seq"] == 2
    await alice.post(uri, "done")
    assert (await other.next_of("message"))["message"] == "done"
    assert all(f.get("type") != "read" for f in other.frames.pending)
    for sock in (phone, laptop, other):
        await sock.close()


@pytest_twisted.ensureDeferred
async def test_a_subscribed_sockets_read_frames_read_nothing_from_the_store(
        make_daemon: Any, tmp_path: Any) -> None:
    """Membership was checked at the subscribe: a mark costs the store no read. A member
    whose row is gone (removed, the subscription not ended yet) stores nothing."""
    from tests.ops.test_metrics import metered, scrape

    daemon = await metered(make_daemon)
    api = Api(daemon.base_url)
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    for text in ("one", "two", "three"):
        await alice.post(uri, text)
    phone = await Socket.open(api.base_url, bob.token)
    laptop = await Socket.open(api.base_url, bob.token)
    for sock in (phone, laptop):
        await sock.subscribe(uri)
    key = 'chatire_store_query_seconds_count{query="membership"}'
    before = (await scrape(daemon.metrics_url)).get(key, 0.0)
    for seq in (1, 2):
        phone.send({"type": "read", "chat": uri, "seq": seq})
    seen = [(await laptop.next_of("read"))["seq"]]
    while seen[-1] != 2:  # told at once, then the second mark within TELL_EVERY
        seen.append((await laptop.next_of("read"))["seq"])
    assert seen in ([1, 2], [2])
    assert (await scrape(daemon.metrics_url)).get(key, 0.0) == before

    # The removal committed, its control event not applied yet: the row is gone. The
    # mark is told early to the user's own other socket (a seq it was sent), and the
    # write changes nothing and tells nothing more.
    db_path = str(daemon.config.db).removeprefix("sqlite:///")
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM members WHERE user_id = ?", (bob.id,))
    phone.send({"type": "read", "chat": uri, "seq": 3})
    assert (await laptop.next_of("read"))["seq"] == 3
    told = laptop.next_of("read", timeout=1.5)
    try:
        frame = await told
    except Exception:  # the timeout: nothing more was announced
        frame = None
    assert frame is None
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM members WHERE user_id = ?",
                          (bob.id,)).fetchone()[0] == 0
    for sock in (phone, laptop):
        await sock.close()


@pytest_twisted.async_yield_fixture
async def store(db_url: str) -> Any:
    from twisted.internet import reactor

    from chatire.store import store_from_url

    opened = store_from_url(db_url, reactor)
    await opened.start()
    yield opened
    await opened.stop()


@pytest_twisted.ensureDeferred
async def test_one_write_raises_many_marks_capped_never_lowered_members_only(
        store: Any) -> None:
    """A window's marks in one write (one statement on PostgreSQL): capped at the chat's
    last seq, never lowered, the highest of a member's marks, non-members left out."""
    from chatire.model import Post

    now = clock_time()
    alice, bob, carol = [await store.create_user(n, "x", n, now) for n in ("al", "bo", "ca")]
    chat = await store.create_chat("c1", "c1", alice.id, now)
    other = await store.create_chat("c2", "c2", alice.id, now)
    await store.add_member(chat, bob, now)
    await store.append_messages(chat, [Post(alice.id, f"m{i}", None) for i in range(3)], now)
    last = (await store.get_chat("c1")).last_seq
    done = await store.mark_read([(chat.id, bob.id, 2), (chat.id, alice.id, last + 50),
                                  (chat.id, carol.id, 1), (chat.id, bob.id, 1),
                                  (other.id, alice.id, 0)])
    assert set(done) == {(chat.id, bob.id, 2), (chat.id, alice.id, last),
                         (other.id, alice.id, 0)}
    assert await store.mark_read([(chat.id, bob.id, 1)]) == [(chat.id, bob.id, 2)]
    assert await store.mark_read([(chat.id, carol.id, 3)]) == []


class _Recorder:
    """A store's mark_read, recorded: every write it was asked for."""

    def __init__(self) -> None:
        self.writes: list[list[tuple[int, int, int]]] = []

    def mark_read(self, marks: list[tuple[int, int, int]]) -> Any:
        from twisted.internet.defer import succeed

        self.writes.append(marks)
        return succeed(marks)


def test_scrolling_through_500_messages_is_one_write_a_window() -> None:
    from chatire.model import Chat, User

    clock, store = Clock(), _Recorder()
    told: list[tuple[str, int, int]] = []
    marks = ReadMarks(store, clock, lambda uri, user, seq, origin: told.append((uri, user, seq)),
                      window=0.5)  # type: ignore[arg-type]
    chat = Chat(7, "c", "t", User(1, "a", "a"), clock_time(), 500)
    for seq in range(1, 501):  # a client that marks every message it scrolls past, for 1 s
        marks.mark(chat, 42, seq)
        clock.advance(0.002)
    clock.advance(0.5)
    # One write (and one announcement) a half-second window, the highest mark in it.
    assert store.writes == [[(7, 42, 250)], [(7, 42, 500)]]
    assert told == [("c", 42, 250), ("c", 42, 500)]
    marks.mark(chat, 42, 3)  # lower than what was written: written as asked, the store
    clock.advance(0.5)       # keeps the higher value (GREATEST), and says so
    assert len(store.writes) == 3


def clock_time() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 1, 1, tzinfo=UTC)


class _SlowStore:
    """A store's mark_read that answers only when told: what is announced before a write."""

    def __init__(self) -> None:
        from twisted.internet.defer import Deferred

        self.writes: list[tuple[list[tuple[int, int, int]], Deferred[Any]]] = []
        self._deferred = Deferred

    def mark_read(self, marks: list[tuple[int, int, int]]) -> Any:
        d = self._deferred()
        self.writes.append((marks, d))
        return d


def test_a_subscribed_sockets_mark_is_told_before_it_is_written_capped_at_what_it_was_sent(
        ) -> None:
    from chatire.model import Chat, User

    clock, store = Clock(), _SlowStore()
    told: list[tuple[str, int, int]] = []
    marks = ReadMarks(store, clock, lambda uri, user, seq, origin: told.append((uri, user, seq)),
                      window=0.5)  # type: ignore[arg-type]
    chat = Chat(7, "c", "t", User(1, "a", "a"), clock_time(), 50)
    marks.mark(chat, 42, 9, known=20)
    assert told == [("c", 42, 9)] and store.writes == []  # at once, before any write
    clock.advance(0.1)
    marks.mark(chat, 42, 30, known=20)  # beyond what the socket was sent: told up to it
    assert told[-1] == ("c", 42, 20)
    clock.advance(0.4)
    assert store.writes[0][0] == [(7, 42, 30)]
    store.writes[0][1].callback([(7, 42, 30)])  # the store had 30: the write tells the rest
    assert told == [("c", 42, 9), ("c", 42, 20), ("c", 42, 30)]
    marks.mark(chat, 42, 30, known=30)  # nothing new: nothing told
    clock.advance(1.0)
    store.writes[1][1].callback([(7, 42, 30)])
    assert told[-1] == ("c", 42, 30) and len(told) == 3
    marks.mark(chat, 43, 5)  # not from a subscribed socket (HTTP): told after the write
    clock.advance(0.5)
    assert told[-1] != ("c", 43, 5)
    store.writes[2][1].callback([(7, 43, 5)])
    assert told[-1] == ("c", 43, 5)


def test_a_scroll_is_told_at_most_every_25_ms_and_ends_on_its_last_mark() -> None:
    from chatire.model import Chat, User
    from chatire.readmarks import TELL_EVERY

    clock, store = Clock(), _Recorder()
    told: list[tuple[str, int, int]] = []
    marks = ReadMarks(store, clock, lambda uri, user, seq, origin: told.append((uri, user, seq)),
                      window=0.5)  # type: ignore[arg-type]
    chat = Chat(7, "c", "t", User(1, "a", "a"), clock_time(), 500)
    for seq in range(1, 501):  # every message marked as it scrolls past, for 1 s
        marks.mark(chat, 42, seq, known=500)
        clock.advance(0.002)
    clock.advance(1.0)
    assert len(store.writes) == 2  # the writes are coalesced as before
    assert told[0] == ("c", 42, 1) and told[-1] == ("c", 42, 500)
    assert len(told) <= 1 + 1.0 / TELL_EVERY + 1
    assert [seq for _, _, seq in told] == sorted({seq for _, _, seq in told})  # never back
