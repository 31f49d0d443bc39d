"""Fault scenarios on two daemons, PostgreSQL and RabbitMQ: the history checker ends at zero.

Each scenario runs a workload (members sending and following chats over WebSockets,
resuming with ``after`` on either daemon, and editing, deleting and reacting to messages
over HTTP), injects one fault while messages flow, lets the daemons recover by
themselves (only a SIGKILLed one is restarted), probes that every member can send
again, and checks the whole history: no seq of any kind lost, duplicated, unexpected,
skipped or reordered, and every message in the state the acknowledged changes made,
in the store and as each member built it. ``CHATIRE_CUT_SECONDS`` sets how long clients
stay cut off (3 s here; the soak uses 30 s).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import pytest_twisted

from tests.reliability.cluster import Cluster, cluster
from tests.reliability.faults import (
    close_broker_connections,
    daemon_queues,
    delete_daemon_queues,
    healthy,
    terminate_backends,
)
from tests.reliability.workload import Workload, probe
from tests.support.daemons import sleep

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.timeout(90)]

CUT_SECONDS = float(os.environ.get("CHATIRE_CUT_SECONDS", "3"))

Fault = Callable[[Cluster, Workload], Awaitable[None]]


async def run_scenario(c: Cluster, fault: Fault, *, clients: int = 10, chats: int = 3,
                       rate: float = 40.0, before: float = 1.5, after: float = 2.0) -> Workload:
    """Messages flow, the fault strikes, the daemons recover, the history is checked."""
    workload = Workload(c.urls, clients=clients, chats=chats, rate=rate)
    await workload.prepare()
    await workload.connect()
    workload.start_sending()
    await sleep(before)
    started = time.monotonic()
    await fault(c, workload)
    await sleep(after)
    for daemon in c.daemons:
        await healthy(daemon, timeout=30)
    await probe(workload)
    report = await workload.finish()
    print(f"\n{fault.__name__}: {report.summary()} | fault+recovery "
          f"{time.monotonic() - started:.1f} s | {workload.stats()}")
    assert report.clean, report.details
    assert report.ok >= workload.sent // 2, report.summary()
    assert report.changes == workload.changed, report.summary()
    assert report.changes_ok >= workload.changed // 3, report.summary()
    assert report.receipts > 0
    for i in range(len(c.daemons)):  # a fault is a warning line, never a traceback
        assert "Traceback" not in c.log(i) and "Unhandled" not in c.log(i), c.log(i)[-3000:]
    return workload


@pytest_twisted.ensureDeferred
async def test_a_daemon_killed_with_sigkill_and_restarted(tmp_path: Path) -> None:
    async def sigkill_a(c: Cluster, w: Workload) -> None:
        a = c.daemons[0]
        assert await a.stop(signal.SIGKILL) == -signal.SIGKILL
        await sleep(1.5)  # messages flow through b meanwhile
        await a.start()

    async with cluster(tmp_path) as c:
        w = await run_scenario(c, sigkill_a)
        assert w.stats()["connects"] > len(w.members)  # the members on a did move


@pytest_twisted.ensureDeferred
async def test_the_broker_closing_every_connection(tmp_path: Path) -> None:
    async def close_all(c: Cluster, w: Workload) -> None:
        await close_broker_connections(c.vhost)

    async with cluster(tmp_path) as c:
        await run_scenario(c, close_all)
        for i in (0, 1):
            assert "CONNECTION_FORCED" in c.log(i)
            assert c.bus_ups(i) >= 2


@pytest_twisted.ensureDeferred
async def test_a_stalled_then_cut_broker_link(tmp_path: Path) -> None:
    """b's broker link goes through a proxy: stalled (heartbeats time out), then cut."""

    async def stall_then_cut(c: Cluster, w: Workload) -> None:
        assert c.proxy is not None and c.proxy.connections == 1
        c.proxy.stall()
        await sleep(9)  # heartbeat 2 s: pika gives up on the silent link after ~7 s
        c.proxy.resume()
        await healthy(c.daemons[1], timeout=20)
        await sleep(1)
        c.proxy.cut()
        await sleep(1)
        c.proxy.restore()

    async with cluster(tmp_path, proxied=True) as c:
        await run_scenario(c, stall_then_cut, before=1.0)
        assert c.bus_ups(1) >= 3  # up, back after the stall, back after the cut
        assert c.bus_ups(0) == 1  # a's own link never noticed


@pytest_twisted.ensureDeferred
async def test_postgresql_backends_terminated(tmp_path: Path) -> None:
    async def terminate(c: Cluster, w: Workload) -> None:
        assert await terminate_backends(c.db) >= 2
        await sleep(0.5)
        await terminate_backends(c.db)

    async with cluster(tmp_path) as c:
        await run_scenario(c, terminate)


@pytest_twisted.ensureDeferred
async def test_clients_cut_off_then_resuming(tmp_path: Path) -> None:
    async def cut_half(c: Cluster, w: Workload) -> None:
        for member in w.members[::2]:
            member.cut(CUT_SECONDS)
        await sleep(CUT_SECONDS)

    async with cluster(tmp_path) as c:
        w = await run_scenario(c, cut_half)
        assert w.stats()["closes"].get(1006, 0) >= len(w.members) // 2


@pytest_twisted.ensureDeferred
async def test_the_daemon_queues_deleted_under_them(tmp_path: Path) -> None:
    async def delete_queues(c: Cluster, w: Workload) -> None:
        before = await delete_daemon_queues(c.vhost)
        assert len(before) == 2
        for _ in range(100):  # both come back with fresh queues by themselves
            now = await daemon_queues(c.vhost)
            if len(now) == 2 and not set(now) & set(before):
                return
            await sleep(0.1)
        raise AssertionError("the daemons did not declare new queues")

    async with cluster(tmp_path) as c:
        await run_scenario(c, delete_queues)
        for i in (0, 1):
            assert c.bus_ups(i) >= 2
