"""The store on real PostgreSQL: seq under concurrency, idempotency, migrations, rehash."""

from __future__ import annotations

import psycopg2
import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from chatire.auth import Passwords, inline_runner
from chatire.chats import ChatService
from chatire.config import Config
from chatire.model import Post
from chatire.store import store_from_url
from chatire.store.cursor import Cursor
from chatire.store.schema import MIGRATIONS
from chatire.store.sqlstore import SQLStore
from tests.support.services import fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> object:
    with fresh_database() as url:
        yield url


async def _stores(url: str, count: int) -> list[SQLStore]:
    stores = [store_from_url(url, reactor) for _ in range(count)]
    await defer.gatherResults([s.start() for s in stores])  # migrations race, safely
    return stores


@pytest_twisted.ensureDeferred
async def test_concurrent_appends_from_many_connections_get_seq_1_to_n(pg_url: str) -> None:
    stores = await _stores(pg_url + "?pool=4", 3)
    store = stores[0]
    now = ChatService(store, Config(), reactor, Passwords(inline_runner)).now()
    user = await store.create_user("writer", "x", "Writer", now)
    chat = await store.create_chat("c" * 22, "t", user.id, now)
    n = 60
    # 3 daemons' pools, 12 connections, 60 transactions at once on one chat row.
    results = await defer.gatherResults([
        stores[i % 3].append_messages(chat, [Post(user.id, f"m{i}", f"k{i % 50}")], now)
        for i in range(n)])
    created = [r[0].message for r in results if r[0].created]
    repeated = [r[0].message for r in results if not r[0].created]
    assert sorted(m.seq for m in created) == list(range(1, 51))  # 50 distinct keys
    assert len(repeated) == 10
    by_key = {m.client_id: m.seq for m in created}
    assert all(by_key[m.client_id] == m.seq for m in repeated)
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT seq), max(seq) FROM messages")
        assert cur.fetchone() == (50, 50, 50)
        cur.execute("SELECT last_seq FROM chats")
        assert cur.fetchone() == (50,)
        cur.execute("SELECT count(*) FROM schema_version")
        assert cur.fetchone() == (len(MIGRATIONS),)  # each applied once, raced by 3
    for s in stores:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_sign_in_rehashes_a_password_with_old_parameters(pg_url: str) -> None:
    (store,) = await _stores(pg_url, 1)
    weak = Passwords(inline_runner, time_cost=1, memory_cost=8192, parallelism=1)
    await ChatService(store, Config(), reactor, weak).register("old", "an old password", None,
                                                               "198.51.100.1")
    strong = ChatService(store, Config(), reactor, Passwords(inline_runner))
    await strong.sign_in("old", "an old password", "198.51.100.1")
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE username = 'old'")
        (stored,) = cur.fetchone()
    assert stored.startswith("$argon2id$") and "m=19456,t=2,p=1" in stored
    await strong.sign_in("old", "an old password", "198.51.100.1")  # the new hash still verifies
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_transactions_begin_with_their_first_statement_and_roll_back(pg_url: str) -> None:
    (store,) = await _stores(pg_url + "?pool=1", 1)  # one connection: it must stay usable

    async def half_done(cur: Cursor) -> None:
        await cur.execute("INSERT INTO schema_version (version) VALUES (%s)", (99,))
        await cur.execute("SELECT no_such_column FROM schema_version")

    with pytest.raises(psycopg2.errors.UndefinedColumn):
        await store.engine.run(half_done)

    async def twice_alone(cur: Cursor) -> None:
        await cur.execute("SELECT 1", alone=True)
        await cur.execute("SELECT 2", alone=True)

    with pytest.raises(RuntimeError):
        await store.engine.run(twice_alone)

    async def alone_inside(cur: Cursor) -> int:
        await cur.execute("INSERT INTO schema_version (version) VALUES (%s)", (98,))
        await cur.execute("SELECT count(*) FROM schema_version WHERE version > 90", alone=True)
        row = cur.fetchone()
        assert row is not None
        return int(row[0])

    assert await store.engine.run(alone_inside) == 1  # ran in the open transaction
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_version WHERE version > 90")
        assert cur.fetchall() == [(98,)]  # 99 was rolled back, 98 committed
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_queued_statements_ride_along_and_a_failed_commit_rolls_back(pg_url: str) -> None:
    (store,) = await _stores(pg_url + "?pool=1", 1)  # one connection: it must stay usable

    async def queued_then_read(cur: Cursor) -> int:
        cur.queue("INSERT INTO schema_version (version) VALUES (%s)", (97,))
        cur.queue("INSERT INTO schema_version (version) VALUES (%s)", (96,))
        await cur.execute("SELECT count(*) FROM schema_version WHERE version > %s", (90,))
        row = cur.fetchone()
        assert row is not None
        cur.queue("INSERT INTO schema_version (version) VALUES (%s)", (95,))  # with COMMIT
        return int(row[0])

    assert await store.engine.run(queued_then_read) == 2

    async def fails_at_commit(cur: Cursor) -> None:
        await cur.execute("INSERT INTO schema_version (version) VALUES (%s)", (94,))
        cur.queue("INSERT INTO schema_version (version) VALUES (%s)", (93,))
        cur.queue("SELECT no_such_column FROM schema_version")

    with pytest.raises(psycopg2.errors.UndefinedColumn):
        await store.engine.run(fails_at_commit)
    assert await store.engine.run(queued_then_read) == 3 + 2  # still usable, clean
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_version WHERE version > 90 ORDER BY version")
        assert [v for (v,) in cur.fetchall()] == [95, 95, 96, 96, 97, 97]  # no 93, 94
    await store.stop()
