"""Faults to inject from a test without blocking its reactor: broker, database, daemons."""

from __future__ import annotations

import os
import shutil
import time
from urllib.parse import urlsplit

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from tests.support.client import Api
from tests.support.daemons import DaemonProcess, sleep
from tests.support.services import PG_ADMIN


async def command(program: str, *args: str) -> str:
    """Run a program (rabbitmqctl, psql); its output; RuntimeError if it fails."""
    path = shutil.which(program) or program
    out, err, code = await getProcessOutputAndValue(path, list(args), env=dict(os.environ),
                                                    reactor=reactor)
    if code != 0:
        raise RuntimeError(f"{program} {args} failed ({code}): {err.decode(errors='replace')}")
    return out.decode()


async def close_broker_connections(vhost: str) -> None:
    """The broker closes every connection of the vhost (as an operator would)."""
    await command("rabbitmqctl", "-q", "close_all_connections", "-p", vhost,
                  "chatire reliability test")


async def daemon_queues(vhost: str) -> list[str]:
    """The server-named queues of the daemons in a vhost."""
    out = await command("rabbitmqctl", "-q", "list_queues", "-p", vhost, "name")
    return [line.strip() for line in out.splitlines() if line.startswith("amq.gen")]


async def delete_daemon_queues(vhost: str, count: int | None = None) -> list[str]:
    """Delete the daemons' queues under them (a consumer cancel); the names deleted."""
    queues = (await daemon_queues(vhost))[:count]
    for queue in queues:
        await command("rabbitmqctl", "-q", "delete_queue", "-p", vhost, queue)
    return queues


async def terminate_backends(db_url: str) -> int:
    """Terminate every PostgreSQL backend of the database; how many there were."""
    name = urlsplit(db_url).path.lstrip("/")
    out = await command(
        "psql", PG_ADMIN, "-XAtq", "-c",
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
    return int(out.strip() or 0)


async def healthy(daemon: DaemonProcess, timeout: float = 30.0) -> None:
    """Wait until the daemon says its store and bus are fine (it recovered by itself)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = await Api(daemon.base_url).call("GET", "/healthz")
            if last[0] == 200:  # type: ignore[index]
                return
        except Exception as e:  # not listening (yet)
            last = e
        await sleep(0.2)
    raise AssertionError(f"{daemon.base_url} not healthy in {timeout} s: {last}")
