"""The sweep reads only the chats that changed (both stores): one query a sweep, nothing
missed when a transaction commits after a later one, a full check after a reconnect."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import psycopg2
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater

from chatire.bus.memory import MemoryBus
from chatire.delivery import Hub
from chatire.metrics import MeteredEngine, Metrics
from chatire.model import Chat, Post, User
from chatire.store import store_from_url
from chatire.store.postgres import split_url
from chatire.store.sqlstore import SQLStore
from tests.unit.harness import FakeConn

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest_twisted.async_yield_fixture
async def stores() -> AsyncIterator[list[SQLStore]]:
    """The stores a test started, stopped after it whatever happened (a SQLite store's
    thread would keep the process alive)."""
    started: list[SQLStore] = []
    yield started
    for store in started:
        await store.stop()

async def _world(stores: list[SQLStore], db_url: str,
                 chats: int) -> tuple[SQLStore, User, list[Chat]]:
    store = store_from_url(db_url, reactor)
    await store.start()
    stores.append(store)
    owner = await store.create_user("owner", "x", "owner", NOW)
    made = [await store.create_chat(f"chat-{i}", "t", owner.id, NOW) for i in range(chats)]
    return store, owner, made


async def _post(store: SQLStore, chat: Chat, user: User, count: int = 1) -> None:
    """Messages committed by "another daemon": no Hub hears of them."""
    await store.append_messages(chat, [Post(user.id, "m", None)] * count, NOW)


async def _eventually(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if check():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


@pytest_twisted.ensureDeferred
async def test_each_call_reads_the_chats_that_changed_since_the_mark(
        db_url: str, stores: list[SQLStore]) -> None:
    store, owner, (a, b, c) = await _world(stores, db_url, 3)
    mark, seqs = await store.changed_chats(None, [a.uri, b.uri, "no-such-chat"])
    assert seqs == {a.uri: 0, b.uri: 0}  # the full check: the chats named that exist
    # Commits one after another, one of them to two chats at once: each call finds
    # what the calls before it had not seen. SQLite's counter finds exactly that;
    # PostgreSQL may repeat a chat (another database's open transaction holds the
    # cluster's xmin back), never miss one.
    posted = dict.fromkeys([a.uri, b.uri, c.uri], 0)
    for changed in ([b], [a, c], [c], [b]):
        await store.append_chats([(chat, [Post(owner.id, "m", None)]) for chat in changed], NOW)
        mark, seqs = await store.changed_chats(mark, [])
        wanted = {chat.uri for chat in changed}
        if store.dialect == "sqlite":
            assert set(seqs) == wanted
        else:
            assert wanted <= set(seqs)
        for chat in changed:
            posted[chat.uri] += 1
            assert seqs[chat.uri] == posted[chat.uri]
    # Nothing changed: nothing comes back (on PostgreSQL once no transaction older
    # than the last commit is open anywhere on the server).
    for _ in range(100):
        mark, seqs = await store.changed_chats(mark, [])
        if not seqs:
            break
        await deferLater(reactor, 0.05, lambda: None)
    assert seqs == {}


def _changed(db_url: str, uris: list[str]) -> list[int]:
    with psycopg2.connect(split_url(db_url)[0]) as db, db.cursor() as cur:
        cur.execute("""SELECT changed FROM chats WHERE uri = ANY(%s)
                       ORDER BY array_position(%s, uri)""", (uris, uris))
        return [int(row[0]) for row in cur.fetchall()]


def _hub(store: SQLStore) -> tuple[Hub, Metrics]:
    """A Hub on a metered store (as the daemon's), its sweep run by the test."""
    metrics = Metrics(Clock(), process=False)
    metered = SQLStore(MeteredEngine(store.engine, metrics))
    return Hub(metered, MemoryBus(Clock()), Clock(), lambda p: p, sweep_interval=0), metrics


def _queries(metrics: Metrics) -> dict[str, float]:
    return {sample.labels["query"]: sample.value
            for family in metrics.registry.collect()
            if family.name == "chatire_store_query_seconds"
            for sample in family.samples if sample.name.endswith("_count")}


async def _subscribe(hub: Hub, store: SQLStore, user: User, chat: Chat) -> FakeConn:
    conn = FakeConn(user)

    async def member_chat(_user: User, uri: str) -> Chat:
        found = await store.get_chat(uri)
        assert found is not None
        return found

    await hub.subscribe(conn, user, chat.uri, None, member_chat)
    return conn


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_post_committed_after_a_later_one_is_found_by_the_next_sweep(
        db_url: str, stores: list[SQLStore]) -> None:
    """The transaction posting to ``a`` takes its id first and commits last, after a sweep
    saw ``b``'s later one: "changed above the highest stamp seen" would never find it."""
    store, owner, (a, b) = await _world(stores, db_url, 2)
    hub, _ = _hub(store)
    conn_a = await _subscribe(hub, store, owner, a)
    conn_b = await _subscribe(hub, store, owner, b)
    await hub.sweep()  # the first: full
    held = psycopg2.connect(split_url(db_url)[0])  # another daemon, mid-transaction
    try:
        with held.cursor() as cur:
            cur.execute("""SELECT r_seq FROM chatire_append(ARRAY[%s]::bigint[],
                           ARRAY[%s]::bigint[], ARRAY['held'], ARRAY[NULL], ARRAY[NULL]::bigint[],
                           now())""", (a.id, owner.id))
            assert cur.fetchone() == (1,)
        await _post(store, b, owner)
        await hub.sweep()
        await _eventually(lambda: conn_b.seqs() == [1], "b's post")
        assert conn_a.seqs() == []  # not committed yet
        held.commit()
    finally:
        held.close()
    stamp_a, stamp_b = _changed(db_url, [a.uri, b.uri])
    assert stamp_a < stamp_b  # the order a naive "changed > highest seen" misses
    await hub.sweep()
    await _eventually(lambda: conn_a.seqs() == [1], "a's post, committed last")


@pytest_twisted.ensureDeferred
async def test_a_sweep_with_no_change_is_one_query(
        db_url: str, stores: list[SQLStore]) -> None:
    store, owner, chats = await _world(stores, db_url, 20)
    hub, metrics = _hub(store)
    conns = [await _subscribe(hub, store, owner, chat) for chat in chats]
    await hub.sweep()  # full, with the new subscriptions
    await _post(store, chats[7], owner, 2)
    await hub.sweep()
    await _eventually(lambda: conns[7].seqs() == [1, 2], "the post")
    before, fills = _queries(metrics), hub.gap_fills
    for _ in range(3):
        await hub.sweep()
    after = _queries(metrics)
    # Per sweep: the control events' read, and one read of the chats that changed.
    assert {name: after[name] - before.get(name, 0) for name in after
            if after[name] != before.get(name, 0)} == {"changed_chats": 3, "control_since": 3}
    assert hub.gap_fills == fills and all(len(c.frames) == (2 if i == 7 else 0)
                                          for i, c in enumerate(conns))


@pytest_twisted.ensureDeferred
async def test_a_bus_reconnect_checks_every_followed_chat(
        db_url: str, stores: list[SQLStore]) -> None:
    """Whatever the mark says (here: one far ahead, as from a database restored elsewhere),
    the sweep after a reconnect reads every followed chat and fills who missed messages."""
    store, owner, (a, b) = await _world(stores, db_url, 2)
    hub, _ = _hub(store)
    conn_a = await _subscribe(hub, store, owner, a)
    await _subscribe(hub, store, owner, b)
    await hub.sweep()
    await _post(store, a, owner, 3)  # the bus lost these
    hub._sweep._mark = 10**15
    hub.on_bus_reconnect()
    await _eventually(lambda: conn_a.seqs() == [1, 2, 3], "the missed messages")


@pytest_twisted.ensureDeferred
async def test_a_mark_that_went_back_makes_the_next_sweep_full(
        db_url: str, stores: list[SQLStore]) -> None:
    store, owner, (a,) = await _world(stores, db_url, 1)
    hub, _ = _hub(store)
    conn = await _subscribe(hub, store, owner, a)
    await hub.sweep()
    await _post(store, a, owner)
    hub._sweep._mark = 10**15  # the store's mark is below it: another database
    await hub.sweep()
    assert conn.seqs() == [] and hub.gap_fills == 0  # that sweep trusted the mark
    await hub.sweep()
    await _eventually(lambda: conn.seqs() == [1], "the post")


def _terminate(db_url: str) -> None:
    """Cut every connection to the test's database, from another connection."""
    admin = psycopg2.connect(split_url(db_url)[0].rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        (db_url.rsplit("/", 1)[1],))
    finally:
        admin.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_the_sweep_after_a_failed_one_is_full(
        db_url: str, stores: list[SQLStore]) -> None:
    store, owner, (a,) = await _world(stores, db_url + "?pool=1", 1)
    hub, metrics = _hub(store)
    conn = await _subscribe(hub, store, owner, a)
    await hub.sweep()
    hub._sweep._mark = 10**15  # a mark only a full check does not trust
    _terminate(db_url)
    await hub.sweep()
    errors = metrics.registry.get_sample_value("chatire_store_errors_total",
                                               {"query": "changed_chats"})
    assert errors == 1  # the sweep's query failed
    for _ in range(100):  # the pool reconnects
        try:
            await _post(store, a, owner)
            break
        except Exception:
            await deferLater(reactor, 0.1, lambda: None)
    await hub.sweep()
    await _eventually(lambda: conn.seqs() == [1], "the post")
