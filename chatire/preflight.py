"""Checks run before the reactor starts, so a bad set-up fails with one clear line."""

from __future__ import annotations

import os
import resource
import sqlite3

import psycopg2
from twisted.logger import Logger

from chatire.config import Config
from chatire.store import sqlite_path
from chatire.store.postgres import split_url

log = Logger()


def preflight(config: Config) -> None:
    """Raise SystemExit with one line if the database cannot be reached; raise fd limit."""
    try:
        if config.db.startswith("sqlite:"):
            path = sqlite_path(config.db)
            folder = os.path.dirname(os.path.abspath(path)) if path != ":memory:" else "."
            if not os.access(folder, os.W_OK):
                raise SystemExit(f"chatire: cannot write the SQLite database in {folder}")
            sqlite3.connect(path).close()
        else:
            dsn, _ = split_url(config.db)
            psycopg2.connect(dsn, connect_timeout=5).close()
    except (sqlite3.Error, psycopg2.Error) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise SystemExit(f"chatire: cannot reach the database ({config.db.split('@')[-1]}): "
                         f"{first}") from None
    raise_open_file_limit()


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft
