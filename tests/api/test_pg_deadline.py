"""A PostgreSQL host that never answers costs one deadline, not the daemon: the pool tries
the next host of the list, keeps TCP keepalives on, and survives its sockets dying."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from txpostgres import txpostgres

from chatire.errors import Unavailable
from chatire.store import store_from_url
from chatire.store.cursor import Cursor
from chatire.store.sqlstore import SQLStore
from tests.support.daemons import sleep
from tests.support.proxy import Proxy
from tests.support.services import PG_ADMIN, fresh_database
from tests.support.silent import SilentHost

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_name() -> Iterator[str]:
    with fresh_database() as url:
        yield url.rsplit("/", 1)[1]


@pytest_twisted.async_yield_fixture
async def silent() -> Any:
    host = SilentHost(reactor)
    host.port = await host.start()  # type: ignore[attr-defined]
    yield host
    await host.stop()


async def _settled(d: Deferred[Any], seconds: float) -> tuple[Any, float] | None:
    """What ``d`` fired with (a Failure if it failed) and after how long; None if it is
    still waiting after ``seconds`` (it is left alone: a cancel is not what is tested)."""
    started = time.monotonic()
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    while not outcome and time.monotonic() - started < seconds:
        await sleep(0.05)
    return (outcome[0], time.monotonic() - started) if outcome else None


def _watched() -> list[Any]:
    """The reactor's readers and writers that are PostgreSQL connections."""
    return [fd for fd in [*reactor.getReaders(), *reactor.getWriters()]
            if isinstance(fd, txpostgres.Connection)]


def _connections(store: SQLStore) -> list[Any]:
    return list(store.engine._pool.connections)  # type: ignore[attr-defined]


async def _server(cur: Cursor) -> tuple[Any, ...]:
    await cur.execute("SELECT inet_server_port(), current_setting('statement_timeout')")
    row = cur.fetchone()
    assert row is not None
    return tuple(row)


def _terminate(db_name: str) -> int:
    """Terminate every backend of the database from another connection; how many."""
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (db_name,))
            row = cur.fetchone()
            assert row is not None
            return int(row[0])
    finally:
        admin.close()


async def _until_served(store: SQLStore, seconds: float) -> float:
    """Seconds until the store answers a query again; fails after ``seconds``."""
    started = time.monotonic()
    while True:
        try:
            await store.ping()
            return time.monotonic() - started
        except Unavailable:
            if time.monotonic() - started > seconds:
                raise
            await sleep(0.1)


@pytest_twisted.ensureDeferred
async def test_a_silent_host_alone_fails_the_start_within_the_deadline(silent: Any) -> None:
    store = store_from_url(f"postgresql://root@127.0.0.1:{silent.port}/nowhere?pool=2",
                           reactor, connect_timeout=1)
    settled = await _settled(store.start(), 6)
    assert settled is not None, "the start still waits on the silent host after 6 s"
    outcome, elapsed = settled
    assert isinstance(outcome, Failure) and outcome.check(Unavailable), outcome
    message = str(outcome.value)
    assert f"127.0.0.1:{silent.port}: no answer within 1 s" in message, message
    assert 0.9 < elapsed < 3, elapsed
    await sleep(0.2)
    assert silent.accepted == 2  # each pooled connection tried it once
    assert not silent.open, "an abandoned attempt left its socket open"
    assert not _watched(), "the reactor still watches an abandoned connection"


FORMS = {
    "hosts in the authority": "postgresql://root@127.0.0.1:{silent},127.0.0.1:5432/{db}"
                              "?pool=2&target_session_attrs=read-write"
                              "&options=-c%20statement_timeout%3D4321",
    "host and port lists in the query": "postgresql://root@/{db}?host=127.0.0.1,127.0.0.1"
                                        "&port={silent},5432&pool=2"
                                        "&options=-c%20statement_timeout%3D4321",
}


@pytest.mark.parametrize("form", list(FORMS))
@pytest_twisted.ensureDeferred
async def test_a_silent_first_host_costs_one_deadline(silent: Any, db_name: str,
                                                      form: str) -> None:
    url = FORMS[form].format(silent=silent.port, db=db_name)
    store = store_from_url(url, reactor, connect_timeout=1)
    settled = await _settled(store.start(), 6)
    assert settled is not None, "the start still waits on the silent host after 6 s"
    outcome, elapsed = settled
    try:
        assert not isinstance(outcome, Failure), outcome
        assert elapsed < 3, elapsed
        # The second host, reached with every other parameter as written.
        assert await store.engine.run(_server) == (5432, "4321ms")
        assert silent.accepted == 2 and not silent.open
        for connection in _connections(store):
            assert _keepalive(connection.fileno()) == (1, 30, 10, 3)
    finally:
        await store.stop()
    assert not _watched()


@pytest_twisted.ensureDeferred
async def test_every_reconnect_has_the_deadline_too(silent: Any, db_name: str) -> None:
    store = store_from_url(f"postgresql://root@127.0.0.1:{silent.port},127.0.0.1:5432/"
                           f"{db_name}?pool=2", reactor, connect_timeout=1)
    settled = await _settled(store.start(), 6)
    assert settled is not None, "the start still waits on the silent host after 6 s"
    try:
        assert silent.accepted == 2
        assert _terminate(db_name) == 2
        took = await _until_served(store, 6)
        assert took < 4, took
        assert silent.accepted == 4 and not silent.open  # each reconnect passed it by
    finally:
        await store.stop()


def _keepalive(fd: int) -> tuple[int, int, int, int]:
    """SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT of a socket."""
    with socket.socket(fileno=os.dup(fd)) as s:
        return (s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT))


@pytest.mark.parametrize(("query", "expected"), [
    ("", (1, 30, 10, 3)),
    ("&keepalives_idle=77&keepalives_count=5", (1, 77, 10, 5)),  # the URL's own win
])
@pytest_twisted.ensureDeferred
async def test_tcp_keepalives_are_on(db_name: str, query: str,
                                     expected: tuple[int, int, int, int]) -> None:
    store = store_from_url(f"postgresql://root@127.0.0.1:5432/{db_name}?pool=2{query}",
                           reactor)
    await store.start()
    try:
        connections = _connections(store)
        assert len(connections) == 2
        assert {_keepalive(c.fileno()) for c in connections} == {expected}
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_a_dropped_connection_reconnects_with_no_unhandled_error(db_name: str) -> None:
    """Backends terminated while new connections are refused: each failed reconnect is a
    warning, not an "Unhandled Error" (a ValueError from the reactor watching fd -1)."""
    proxy = Proxy(reactor, "127.0.0.1", 5432)
    port = await proxy.start()
    store = store_from_url(f"postgresql://root@127.0.0.1:{port}/{db_name}?pool=2", reactor,
                           connect_timeout=1)
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        await store.start()
        proxy.refuse()
        assert _terminate(db_name) == 2
        await sleep(3)  # reconnects fail meanwhile (at 0 s and about 1.7 s)
        proxy.restore()
        await _until_served(store, 15)
    finally:
        globalLogPublisher.removeObserver(events.append)
        await store.stop()
        await proxy.stop()
    # An "Unhandled Error" the reactor logs is a legacy event: "failure", not "log_failure".
    failures = [e.get("log_failure") or e["failure"] for e in events
                if "log_failure" in e or "failure" in e]
    assert not failures, [f.getTraceback() for f in failures]
    text = [str(e.get("log_format", "")) for e in events]
    assert "PostgreSQL connection lost: {error}" in text
    assert "PostgreSQL: cannot reconnect ({reason}); retrying" in text
