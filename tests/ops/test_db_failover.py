"""`twistd chatire` whose first PostgreSQL host never answers: it listens within seconds,
serves through the second host, and reconnects past the silent one without a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg2
import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.support.client import Api
from tests.support.daemons import DaemonProcess, sleep
from tests.support.services import PG_ADMIN, fresh_database
from tests.support.silent import SilentHost

pytestmark = pytest.mark.postgres


def _terminate(db_name: str) -> int:
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


@pytest_twisted.ensureDeferred
async def test_a_silent_first_host_does_not_hold_the_daemon(tmp_path: Path) -> None:
    silent = SilentHost(reactor)
    port = await silent.start()
    try:
        with fresh_database() as url:
            name = url.rsplit("/", 1)[1]
            # How long a start takes on this machine with the second host alone.
            plain = DaemonProcess(tmp_path, f"{url}?pool=2", name="plain")
            started = time.monotonic()
            await plain.start(timeout=30)
            baseline = time.monotonic() - started
            await plain.stop()

            db = f"postgresql://root@127.0.0.1:{port},127.0.0.1:5432/{name}?pool=2"
            # Set in the environment, as a deployment's env file would.
            daemon = DaemonProcess(tmp_path, db, env={"CHATIRE_DB_CONNECT_TIMEOUT": "1"})
            started = time.monotonic()
            try:
                await daemon.start(timeout=baseline + 15)
                took = time.monotonic() - started
                # The preflight waits 2 s on it (libpq's least), the pool 1 s.
                print(f"\nlistening after {took:.1f} s (second host alone: {baseline:.1f} s)")
                assert took < baseline + 5, f"listening after {took:.1f} s ({baseline:.1f})"
                api = Api(daemon.base_url)
                await api.user("alice")

                assert _terminate(name) >= 2
                again = time.monotonic()
                while True:  # each reconnect passes the silent host by within its deadline
                    status, _ = await api.call("GET", "/healthz")
                    if status == 200:
                        break
                    assert time.monotonic() - again < 10, "the store did not come back"
                    await sleep(0.2)
                await api.user("bob")
            finally:
                await daemon.stop()
            log = daemon.log.read_text()
    finally:
        await silent.stop()
    assert "no answer within 1 s; trying the next host" in log
    assert "PostgreSQL connection lost" in log
    assert "Traceback" not in log and "Unhandled" not in log, log[-3000:]
