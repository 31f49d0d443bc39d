"""Real PostgreSQL and RabbitMQ for tests: a fresh database per use, skip or fail if absent."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest

PG_ADMIN = os.environ.get("CHATIRE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("CHATIRE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")


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
    """A new, empty PostgreSQL database; its URL; dropped afterwards."""
    require("PostgreSQL", 5432)
    name = f"chatire_test_{secrets.token_hex(6)}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
