"""Slow clients cannot hold connections: a request trickled past --request-timeout is cut,
and a thousand of them at once leave the daemon answering promptly (a real daemon)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_twisted
import treq
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from tests.support.client import Api, Socket
from tests.support.daemons import DaemonProcess, sleep

TIMEOUT = 2.0


class Trickler(Protocol):
    """A client that sends its request one byte at a time and never finishes it."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.sent = 0
        self.lost: defer.Deferred[float] = defer.Deferred()

    def drip(self) -> None:
        if not self.lost.called and self.transport is not None:
            self.transport.write(self.request[self.sent % len(self.request):][:1])
            self.sent += 1

    def connectionLost(self, reason: Failure) -> None:
        self.lost.callback(time.monotonic())


@pytest_twisted.async_yield_fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DaemonProcess]:
    # The idle timeout is long: only the whole-request deadline can cut a trickler.
    process = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / 'slow.db'}", "memory://",
                            "--request-timeout", str(TIMEOUT), "--http-timeout", "300")
    await process.start()
    yield process
    await process.stop()


async def healthz_seconds(base_url: str) -> float:
    started = time.monotonic()
    response = await treq.get(base_url + "/healthz", persistent=False)
    await response.content()
    assert response.code == 200
    return time.monotonic() - started


@pytest_twisted.ensureDeferred
async def test_a_thousand_trickling_clients_are_cut_and_healthz_stays_prompt(
        daemon: DaemonProcess) -> None:
    requests = [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200,
                b"POST /api/auth/token HTTP/1.1\r\nContent-Length: 500\r\n\r\n" + b"{" * 500]
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", daemon.port, timeout=10)
    slow: list[Trickler] = []
    drip = LoopingCall(lambda: [t.drip() for t in slow])
    drip.start(0.25)
    started = time.monotonic()
    try:
        for _ in range(20):  # 50 at a time: the listen backlog
            clients = [Trickler(requests[i % 2]) for i in range(50)]
            await defer.gatherResults([connectProtocol(endpoint, c) for c in clients])
            slow += clients
        opened = time.monotonic() - started
        latencies = [await healthz_seconds(daemon.base_url) for _ in range(10)]
        cut = defer.gatherResults([c.lost for c in slow])
        closed = await cut.addTimeout(opened + TIMEOUT + 10, reactor)
    finally:
        drip.stop()
    # Each was cut at its deadline, well before it could finish (it never would).
    assert max(closed) - started < opened + TIMEOUT + 3, (opened, max(closed) - started)
    assert all(c.sent < 200 for c in slow)
    print(f"\n1000 trickling clients opened in {opened:.1f} s, all cut "
          f"{max(closed) - started:.1f} s after the first; /healthz meanwhile: "
          f"max {max(latencies) * 1000:.0f} ms")
    assert max(latencies) < 1.5, latencies
    assert await healthz_seconds(daemon.base_url) < 1.0


@pytest_twisted.ensureDeferred
async def test_a_prompt_request_and_an_open_websocket_outlive_the_deadline(
        daemon: DaemonProcess) -> None:
    api = Api(daemon.base_url)
    alice = await api.user()
    uri = await alice.new_chat()
    ws = await Socket.open(daemon.base_url, alice.token, auth_frame=False)
    await ws.subscribe(uri)
    await sleep(TIMEOUT * 2)  # the upgrade ended the deadline: the socket stays
    assert not ws.closed.called
    await alice.post(uri, "after the deadline")
    assert (await ws.next_of("message"))["message"] == "after the deadline"
    await ws.close()
