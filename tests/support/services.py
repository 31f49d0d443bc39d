"""Real PostgreSQL and RabbitMQ for tests: a fresh database per use, skip or fail if absent."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chatire import testing
from chatire.testing import AMQP_URL, PG_ADMIN

__all__ = ["AMQP_URL", "PG_ADMIN", "fresh_database", "require"]


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str, port: int) -> None:
    """Skip when a service is down on a developer machine; fail under CI=true."""
    if _port_open("127.0.0.1", port):
        return
    message = f"{name} is not running on 127.0.0.1:{port} (run `make services`)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; its URL; dropped afterwards (skipped if PG is down)."""
    require("PostgreSQL", 5432)
    with testing.fresh_database() as url:
        yield url
