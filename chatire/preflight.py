"""Checks run before the reactor starts, so a bad set-up fails with one clear line."""

from __future__ import annotations

import ctypes
import math
import os
import resource
import sqlite3

import psycopg2
from psycopg2.extensions import make_dsn
from twisted.logger import Logger

from chatire.config import Config
from chatire.store import sqlite_path
from chatire.store.postgres import connection_url
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
            dsn, _ = connection_url(config.db)
            # libpq's own deadline, per host of a list (whole seconds, at least 2).
            timeout = config.db_connect_timeout
            if timeout > 0:
                dsn = make_dsn(dsn, connect_timeout=max(1, math.ceil(timeout)))
            psycopg2.connect(dsn).close()
    except (sqlite3.Error, psycopg2.Error) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise SystemExit(f"chatire: cannot reach the database ({redacted(config.db)}): "
                         f"{first}") from None
    check_broker(config.bus)
    raise_open_file_limit()
    return_big_blocks()


def check_broker(url: str, timeout: float = 5.0) -> None:
    """Raise SystemExit with the broker's reason if every node refuses us for good (a wrong
    password, a vhost that is not there): that is a misconfiguration, not an outage. A
    node that cannot be reached is an outage: the daemon starts and keeps retrying."""
    if not url.startswith("amqp"):
        return
    import pika
    from pika.exceptions import (
        AMQPError,
        ProbableAccessDeniedError,
        ProbableAuthenticationError,
    )

    from chatire.bus._amqp_link import parse_url, split_urls

    refused: list[str] = []
    urls = split_urls(url)
    for one in urls:
        params, _ = parse_url(one)
        params.socket_timeout = params.blocked_connection_timeout = timeout
        params.connection_attempts, params.retry_delay = 1, 0
        try:
            pika.BlockingConnection(params).close()
            return
        except (ProbableAuthenticationError, ProbableAccessDeniedError) as e:
            refused.append(f"{redacted(one)}: {e.__class__.__name__}: "
                           f"{str(e).strip().splitlines()[0][:200]}")
        except (AMQPError, OSError) as e:
            log.warn("preflight: the broker at {url} cannot be reached now ({error}); "
                     "starting anyway, the bus will keep retrying",
                     url=redacted(one), error=e.__class__.__name__)
    if refused and len(refused) == len(urls):
        raise SystemExit("chatire: the broker refused the bus link (check the user, the "
                         "password and the vhost of --bus): " + "; ".join(refused))


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
