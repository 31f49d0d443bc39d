"""Checks run before the reactor starts, so a bad set-up fails with one clear line."""

from __future__ import annotations

import ctypes
import os
import resource
import sqlite3
from typing import Any

import psycopg2
from twisted.internet import tcp
from twisted.internet.interfaces import IReactorTime
from twisted.logger import ILogObserver, Logger
from zope.interface import implementer

from chatire.config import Config
from chatire.store import sqlite_path
from chatire.store.postgres import split_url
from chatire.urls import redacted

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
        raise SystemExit(f"chatire: cannot reach the database ({redacted(config.db)}): "
                         f"{first}") from None
    raise_open_file_limit()
    return_big_blocks()


#: glibc's mallopt parameter for the size past which malloc uses mmap.
_M_MMAP_THRESHOLD = -3


def return_big_blocks(threshold: int = 128 * 1024) -> bool:
    """Fix glibc's mmap threshold, so large freed blocks go back to the system.

    glibc raises the threshold to the size of the last large block freed, up to
    32 MiB. argon2 takes ~19 MiB per hash on a pool thread; after the first one,
    each thread's arena keeps its 19 MiB for good: ~150 MiB of the daemon's RSS
    after a few sign-ins, before any socket. A fixed threshold keeps them mmapped.
    """
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc
        return False


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; log it; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    log.info("open files: limit {limit} (each socket takes one; past it new connections "
             "are refused)", limit=soft)
    return soft


#: The accept events of Twisted's tcp.Port that come once per refused connection.
_REFUSALS = ("EMFILE encountered", "EMFILE recovery", "Re-reserving EMFILE",
             "Could not accept new connection")


@implementer(ILogObserver)
class AcceptErrorLog:
    """A listening port's log: accept failures (EMFILE and kin) at most once an interval.

    Out of descriptors, Twisted's tcp.Port frees a reserved one, accepts and closes
    every waiting client and logs three lines plus one per client: a storm under
    load. This passes other events on, counts those, and says once per interval
    how many connections were refused since the last line.
    """

    def __init__(self, clock: IReactorTime, observer: ILogObserver,
                 interval: float = 10.0) -> None:
        self._clock = clock
        self._observer = observer
        self._interval = interval
        self._last = float("-inf")
        self._refused = 0

    def __call__(self, event: dict[str, Any]) -> None:
        text = str(event.get("log_format") or "")
        if not text.startswith(_REFUSALS):
            self._observer(event)
            return
        if text.startswith(("EMFILE recovery", "Could not accept")):
            self._refused += 1
        now = self._clock.seconds()
        if now - self._last < self._interval or not self._refused:
            return
        self._last = now
        count, self._refused = self._refused, 0
        log.warn("refused {count} connections: out of file descriptors (open-file limit "
                 "{limit}); raise LimitNOFILE or lower --max-connections",
                 count=count, limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def quiet_accept_errors(port: object, clock: IReactorTime, interval: float = 10.0) -> None:
    """Route a listening tcp.Port's accept-failure lines through an AcceptErrorLog."""
    if isinstance(port, tcp.Port):
        old = port._logger
        port._logger = Logger(namespace=old.namespace,
                              observer=AcceptErrorLog(clock, old.observer, interval))
