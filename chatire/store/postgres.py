"""PostgreSQL engine on txpostgres: a pool of non-blocking connections that recover."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg2
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from txpostgres import reconnection, txpostgres

from chatire.errors import Unavailable

T = TypeVar("T")
log = Logger()

_DEAD = (psycopg2.InterfaceError, psycopg2.OperationalError, reconnection.ConnectionDead,
         txpostgres.RollbackFailed, txpostgres.AlreadyConnected)


class PostgresCursor:
    """The Cursor protocol over a txpostgres cursor."""

    dialect = "postgresql"

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._cursor.execute(sql, tuple(params))

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def time(self, value: Any) -> datetime:
        return value


def split_url(url: str) -> tuple[str, int]:
    """The libpq URL to connect with, and the pool size (``?pool=N``, default 4)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    try:
        size = int(query.pop("pool", "4"))
    except ValueError:
        raise ValueError("--db: pool must be a whole number") from None
    if size < 1:
        raise ValueError("--db: pool must be at least 1")
    return urlunsplit(parts._replace(query=urlencode(query))), size


class _Connection(txpostgres.Connection):
    """A connection whose socket dying while idle is a lost connection, not an error.

    txpostgres polls an idle connection from ``doRead``; when the server went away
    (a terminated backend, a restart) the poll raises and the reactor logs an
    "Unhandled Error" with a traceback. Returned instead, the reactor closes the
    connection the same way, and the detector reconnects it.
    """

    def doRead(self) -> Any:
        try:
            return super().doRead()
        except (psycopg2.InterfaceError, psycopg2.OperationalError) as e:
            log.warn("PostgreSQL connection lost: {error}", error=str(e).strip())
            return e

    def _runInteraction(self, interaction: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        # txpostgres' own, less its log.err when the rollback fails (as it must on a
        # dead connection): the engine reports that failure once, as 'unavailable'.
        cursor = self.cursor()
        d: Deferred[Any] = cursor.execute("begin")
        d.addCallback(interaction, *args, **kwargs)

        def commit(result: Any) -> Deferred[Any]:
            return cursor.execute("commit").addCallback(lambda _: result)

        def rollback(failure: Failure) -> Deferred[Any]:
            undone: Deferred[Any] = maybeDeferred(cursor.execute, "rollback")
            undone.addErrback(lambda _: fail(txpostgres.RollbackFailed(self, failure)))
            return undone.addCallback(lambda _: failure)

        d.addCallback(commit)
        d.addErrback(rollback)
        return d


class PostgresEngine:
    """A txpostgres ConnectionPool whose connections each detect death and reconnect."""

    dialect = "postgresql"

    def __init__(self, url: str, reactor: Any) -> None:
        self._dsn, size = split_url(url)
        self._reactor = reactor

        def connection(_reactor: Any, cooperator: Any) -> txpostgres.Connection:
            detector = reconnection.DeadConnectionDetector(reactor=reactor)
            return _Connection(reactor, cooperator, detector=detector)

        pool_class = type("Pool", (txpostgres.ConnectionPool,),
                          {"connectionFactory": staticmethod(connection),
                           "reactor": reactor})
        self._pool = pool_class(None, self._dsn, min=size)
        self._started = False

    def connect(self) -> Deferred[None]:
        d = self._pool.start()

        def started(_: object) -> None:
            self._started = True

        def failed(failure: Failure) -> None:
            self._pool.close()
            error = failure.value
            inner = getattr(error, "subFailure", None)
            reason = inner.value if inner is not None else error
            raise Unavailable(f"cannot connect to PostgreSQL: {str(reason).strip()}")

        d.addCallbacks(started, failed)
        return d

    def close(self) -> Deferred[None]:
        if self._started:
            self._started = False
            self._pool.close()
        return succeed(None)

    def run(self, txn: Callable[..., Awaitable[T]], *args: Any) -> Deferred[T]:
        def interaction(cursor: Any) -> Deferred[T]:
            return Deferred.fromCoroutine(txn(PostgresCursor(cursor), *args))  # type: ignore[arg-type]

        d: Deferred[T] = self._pool.runInteraction(interaction)
        d.addErrback(self._unavailable)
        return d

    def _unavailable(self, failure: Failure) -> Failure:
        if failure.check(*_DEAD):
            error = failure.value
            if isinstance(error, txpostgres.RollbackFailed):  # say why it was rolled back
                error = error.originalFailure.value
            log.warn("store unavailable: {error}", error=str(error).strip())
            raise Unavailable("the database cannot be reached right now")
        return failure
