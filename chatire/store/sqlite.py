"""SQLite engine for the embedded single-node default, on one worker thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from chatire.errors import Invalid, Unavailable
from chatire.store.sqlstore import REFUSED_TEXT, run_sync

T = TypeVar("T")


class SQLiteCursor:
    """The Cursor protocol over sqlite3: ``%s`` becomes ``?``, times are ISO text."""

    dialect = "sqlite"

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def execute(self, sql: str, params: Sequence[Any] = (), *,
                      alone: bool = False) -> None:
        values = tuple(_to_sql(value) for value in params)
        self._cursor.execute(sql.replace("%s", "?"), values)

    def queue(self, sql: str, params: Sequence[Any] = ()) -> None:
        run_sync(self.execute(sql, params))

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def time(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)


def _to_sql(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


class SQLiteEngine:
    """Runs every transaction on one dedicated thread, so the reactor never blocks."""

    dialect = "sqlite"

    def __init__(self, path: str, reactor: Any, *,
                 inline: bool = False) -> None:
        self._path = path
        self._reactor = reactor
        self._inline = inline  # run on the calling thread: deterministic unit tests only
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="chatire-sqlite")
        self._connection: sqlite3.Connection | None = None

    def connect(self) -> Deferred[None]:
        if self._inline:
            return maybeDeferred(self._open)
        self._pool.start()
        return deferToThreadPool(self._reactor, self._pool, self._open)

    def _open(self) -> None:
        try:
            connection = sqlite3.connect(self._path, isolation_level=None,
                                         check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as e:
            raise Unavailable(f"cannot open SQLite database {self._path!r}: {e}") from None
        self._connection = connection

    def close(self) -> Deferred[None]:
        if self._inline:
            return maybeDeferred(self._close)
        if not self._pool.started:
            return succeed(None)
        return Deferred.fromCoroutine(self._shut_down())

    async def _shut_down(self) -> None:
        try:
            await deferToThreadPool(self._reactor, self._pool, self._close)
        finally:
            self._pool.stop()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def run(self, txn: Callable[..., Awaitable[T]], *args: Any) -> Deferred[T]:
        if self._inline:
            return maybeDeferred(self._transaction, txn, args)
        return deferToThreadPool(self._reactor, self._pool, self._transaction, txn, args)

    def _transaction(self, txn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        if self._connection is None:
            raise Unavailable("the SQLite database is closed")
        cursor = self._connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            result = run_sync(txn(SQLiteCursor(cursor), *args))
        except sqlite3.OperationalError as e:
            self._connection.rollback()
            raise Unavailable(f"SQLite: {e}") from None
        except (UnicodeError, sqlite3.DataError):  # a lone surrogate cannot be encoded
            self._connection.rollback()
            raise Invalid(REFUSED_TEXT) from None
        except BaseException:
            self._connection.rollback()
            raise
        finally:
            cursor.close()
        self._connection.commit()
        return result
