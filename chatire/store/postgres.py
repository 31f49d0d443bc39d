"""PostgreSQL engine on txpostgres: a pool of non-blocking connections that recover."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import unquote

import psycopg2
from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from txpostgres import reconnection, txpostgres

from chatire._internals.txpostgres import OWN_TRANSACTIONS
from chatire.config import DEFAULT_DB_CONNECT_TIMEOUT
from chatire.errors import Invalid, Unavailable
from chatire.store.pgconnection import DeadlineConnection
from chatire.store.sqlstore import REFUSED_TEXT

T = TypeVar("T")
log = Logger()
_DEAD = (psycopg2.InterfaceError, psycopg2.OperationalError, reconnection.ConnectionDead,
         txpostgres.RollbackFailed, txpostgres.AlreadyConnected)


class PostgresCursor:
    """The Cursor protocol over a txpostgres cursor, in a transaction begun on first use.

    Every statement is a round trip through the reactor, so none is spent on its
    own BEGIN: it rides with the first statement. A statement run ``alone`` gets
    no transaction at all (psycopg2's asynchronous connections autocommit, and a
    single statement is atomic), so it costs one round trip in all.
    """

    dialect = "postgresql"

    def __init__(self, cursor: Any, *, managed: bool = False) -> None:
        self._cursor = cursor
        # "new", then "open" (COMMIT or ROLLBACK due), then "done"; "managed" when
        # txpostgres begins and ends the transaction itself.
        self.state = "managed" if managed else "new"
        self._queued: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, sql: str, params: Sequence[Any] = (), *,
                      alone: bool = False) -> None:
        if self.state == "done":
            raise RuntimeError("a statement run alone must be its transaction's only one")
        if self.state == "new":
            if alone:
                self.state = "done"
            else:
                self.state = "open"
                sql = "BEGIN; " + sql
        sql, params = self._with_queued(sql, params)
        await self._cursor.execute(sql, params)

    async def flush(self) -> None:
        """Send the statements still queued (a transaction txpostgres commits itself)."""
        if self._queued:
            queued, self._queued = self._queued, []
            await self._cursor.execute("; ".join(q for q, _ in queued),
                                       tuple(v for _, values in queued for v in values))

    def queue(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self.state == "new":
            self.state = "open"
            sql = "BEGIN; " + sql
        self._queued.append((sql, tuple(params)))

    def _with_queued(self, sql: str, params: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """The statement after the queued ones, in one query string (%s placeholders are
        positional, so their parameters are simply joined in order)."""
        queued, self._queued = self._queued, []
        return ("; ".join([*(q for q, _ in queued), sql]),
                tuple(value for _, values in [*queued, (sql, params)] for value in values))

    def finish(self, verb: str) -> Deferred[Any]:
        """COMMIT (with the statements still queued) or ROLLBACK the transaction begun
        by the first statement."""
        self.state = "done"
        if verb == "commit" and self._queued:
            d: Deferred[Any] = self._cursor.execute(*self._with_queued(verb, ()))
            return d
        self._queued = []
        return self._cursor.execute(verb)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def time(self, value: Any) -> datetime:
        return value


def split_url(url: str) -> tuple[str, int]:
    """The libpq URL to connect with, and the pool size (``?pool=N``, default 4).

    Only ``pool`` is taken out; everything else reaches libpq as written (an empty
    host for the local socket, percent-encoded socket paths, host lists, ``options``
    with ``%20``): rebuilding the URL with urllib breaks forms libpq accepts.
    """
    base, mark, query = url.partition("?")
    kept: list[str] = []
    size_text = "4"
    for parameter in query.split("&") if mark else ():
        key, _, value = parameter.partition("=")
        if unquote(key) == "pool":
            size_text = unquote(value)
        elif parameter:
            kept.append(parameter)
    try:
        size = int(size_text)
    except ValueError:
        raise ValueError("--db: pool must be a whole number") from None
    if size < 1:
        raise ValueError("--db: pool must be at least 1")
    return (base + "?" + "&".join(kept) if kept else base), size


#: What pg_stat_activity shows for chatire's connections, unless the URL names its own.
APPLICATION_NAME = "chatire"

#: TCP keepalives, unless the URL sets its own: an idle pooled connection to a host
#: that vanished (a failover, a cut link) is found dead within about a minute, not
#: after the system's two hours.
KEEPALIVES = (("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"),
              ("keepalives_count", "3"))


def connection_url(url: str) -> tuple[str, int]:
    """split_url, plus TCP keepalives and ``application_name=chatire``, each unless the
    URL sets it (or, for the name, PGAPPNAME does)."""
    dsn, size = split_url(url)
    _, mark, query = dsn.partition("?")
    named = {unquote(p.partition("=")[0]) for p in query.split("&")} if mark else set()
    added = [(key, value) for key, value in KEEPALIVES if key not in named]
    if "application_name" not in named and not os.environ.get("PGAPPNAME"):
        added.append(("application_name", APPLICATION_NAME))
    if not added:
        return dsn, size
    return dsn + ("&" if mark else "?") + "&".join(f"{k}={v}" for k, v in added), size


class _Connection(DeadlineConnection):
    """A connection whose interactions run in chatire's own transactions (PostgresCursor)."""

    def transaction(self, interaction: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        # txpostgres' own sends BEGIN and COMMIT as statements of their own and logs
        # (log.err) a failed rollback, as one must fail on a dead connection. Here
        # BEGIN rides with the first statement, nothing is sent for a statement run
        # alone, and a failed rollback is reported once, by the engine, as
        # 'unavailable'.
        cursor = PostgresCursor(self.cursor())
        d: Deferred[Any] = maybeDeferred(interaction, cursor, *args, **kwargs)

        def commit(result: Any) -> Any:
            if cursor.state != "open":
                return result
            done = cursor.finish("commit")
            done.addCallbacks(lambda _: result, undo)
            return done

        def undo(failure: Failure) -> Any:
            # A statement sent with the COMMIT failed: the transaction is aborted, not
            # ended. ROLLBACK it (harmless when the COMMIT ended it), then fail.
            undone: Deferred[Any] = maybeDeferred(self.cursor().execute, "rollback")
            undone.addErrback(lambda _: fail(txpostgres.RollbackFailed(self, failure)))
            return undone.addCallback(lambda _: failure)

        def rollback(failure: Failure) -> Any:
            if cursor.state != "open":
                return failure
            undone: Deferred[Any] = maybeDeferred(cursor.finish, "rollback")
            undone.addErrback(lambda _: fail(txpostgres.RollbackFailed(self, failure)))
            return undone.addCallback(lambda _: failure)

        d.addCallbacks(commit, rollback)
        return d


class PostgresEngine:
    """A txpostgres ConnectionPool whose connections each detect death and reconnect."""

    dialect = "postgresql"

    def __init__(self, url: str, reactor: Any, *,
                 connect_timeout: float = DEFAULT_DB_CONNECT_TIMEOUT) -> None:
        self._dsn, size = connection_url(url)
        self._reactor = reactor

        def connection(_reactor: Any, cooperator: Any) -> txpostgres.Connection:
            detector = reconnection.DeadConnectionDetector(reactor=reactor)
            return _Connection(reactor, cooperator, detector=detector,
                               deadline=connect_timeout)

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
            if isinstance(reason, CancelledError):  # the caller's own timeout: it says why
                raise CancelledError() from None
            raise Unavailable(f"cannot connect to PostgreSQL: {str(reason).strip()}")

        d.addCallbacks(started, failed)
        return d

    def close(self) -> Deferred[None]:
        if self._started:
            self._started = False
            self._pool.close()
        return succeed(None)

    def run(self, txn: Callable[..., Awaitable[T]], *args: Any) -> Deferred[T]:
        async def managed(cursor: PostgresCursor) -> T:
            result = await txn(cursor, *args)
            await cursor.flush()  # txpostgres sends its COMMIT on its own
            return result

        def interaction(cursor: Any) -> Deferred[T]:
            if not OWN_TRANSACTIONS:  # txpostgres' cursor, in its BEGIN ... COMMIT
                return Deferred.fromCoroutine(managed(PostgresCursor(cursor, managed=True)))
            return Deferred.fromCoroutine(txn(cursor, *args))  # type: ignore[arg-type]

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
        if failure.check(psycopg2.DataError, ValueError):
            # Values the server or psycopg2 cannot take (a NUL, an unencodable
            # character): bad input, refused. The error names no value.
            log.warn("the store refused a value: {error}", error=failure.value.__class__.__name__)
            raise Invalid(REFUSED_TEXT)
        return failure
