"""The store: chat data in PostgreSQL (txpostgres) or SQLite, behind IStore."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from chatire.config import DEFAULT_DB_CONNECT_TIMEOUT
from chatire.store.sqlstore import SQLStore


def store_from_url(url: str, reactor: Any, *,
                   connect_timeout: float = DEFAULT_DB_CONNECT_TIMEOUT) -> SQLStore:
    """The store a ``--db`` URL names: ``sqlite:///PATH`` or ``postgresql://...``
    (``connect_timeout``: seconds each PostgreSQL host has to answer a connect)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from chatire.store.sqlite import SQLiteEngine

        return SQLStore(SQLiteEngine(sqlite_path(url), reactor))
    if parts.scheme in ("postgresql", "postgres"):
        from chatire.store.postgres import PostgresEngine

        return SQLStore(PostgresEngine(url, reactor, connect_timeout=connect_timeout))
    raise ValueError(f"--db: unsupported URL scheme {parts.scheme!r} "
                     "(use sqlite:///PATH or postgresql://...)")


def sqlite_path(url: str) -> str:
    """The file of ``sqlite:///relative.db`` or ``sqlite:////absolute.db``."""
    if not url.startswith("sqlite:///"):
        raise ValueError("--db: a SQLite URL is sqlite:///PATH, e.g. sqlite:///chatire.db")
    path = url[len("sqlite:///"):]
    if not path:
        raise ValueError("--db: sqlite URL needs a path, e.g. sqlite:///chatire.db")
    return path
