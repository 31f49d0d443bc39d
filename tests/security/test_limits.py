"""Limits that keep one client from hurting others: frame size, slow readers, half-open
connections, per-user send and sign-in rates — each proven on a real daemon."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from tests.security.helpers import closed_within
from tests.support.client import Api, Socket
from tests.support.daemons import DaemonProcess, sleep


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest_twisted.async_yield_fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Any]:
    """Start `twistd chatire` processes on SQLite with chosen options; all stopped after."""
    started: list[DaemonProcess] = []

    async def start(*options: str) -> DaemonProcess:
        n = len(started)
        daemon = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / f'd{n}.db'}", "memory://",
                               *options, name=f"d{n}")
        started.append(daemon)
        await daemon.start()
        return daemon

    yield start
    for daemon in started:
        await daemon.stop()


# -- frame size --------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_frames_over_the_limit_close_1009_before_and_after_auth(make_daemon: Any) -> None:
    daemon = await make_daemon(max_frame_bytes=1024)
    alice = await Api(daemon.base_url).user()
    uri = await alice.new_chat()
    ws = await Socket.open(daemon.base_url, alice.token)
    ws.send({"type": "send", "chat": uri, "message": "y" * 900, "client_id": "fits"})
    assert (await ws.next_of("sent"))["client_id"] == "fits"  # just under: fine
    cases: list[tuple[str, Any]] = [
        ("one big text frame", lambda p: p.sendMessage(b'{"type":"typing"}' + b" " * 2000)),
        ("one big binary frame", lambda p: p.sendMessage(b"\x00" * 2000, isBinary=True)),
        ("fragments adding up", lambda p: p.sendMessage(b"z" * 4000, fragmentSize=500)),
        ("a huge non-JSON frame", lambda p: p.sendMessage(b"\xff" * 100_000)),
    ]
    for what, send in cases:
        for authenticated in (True, False):
            sock = await Socket.open(daemon.base_url, alice.token if authenticated else None)
            send(sock.protocol)
            code, _ = await closed_within(sock, 5)
            assert code == 1009, (what, authenticated, code)
    _, body = await alice.call("GET", f"/api/chats/{uri}")
    assert body["chat"]["last_seq"] == 1
    await ws.close()


# -- slow readers -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_readers_that_stop_reading_are_closed_4008_and_memory_stays_bounded(
        spawn: Any) -> None:
    daemon = await spawn("--slow-reader-bytes", "262144", "--max-message-chars", "60000",
                         "--send-rate", "0")
    assert daemon.proc is not None
    pid = daemon.proc.pid
    api = Api(daemon.base_url)
    alice = await api.user()
    uri = await alice.new_chat()
    stalled = []
    for _ in range(16):
        reader = await Socket.open(daemon.base_url, alice.token)
        await reader.subscribe(uri)
        transport: Any = reader.protocol.transport
        transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        transport.pauseProducing()  # stop reading: the daemon's side fills up
        stalled.append(reader)
    healthy = await Socket.open(daemon.base_url, alice.token)
    await healthy.subscribe(uri)
    writer = await Socket.open(daemon.base_url, alice.token)
    baseline = peak = rss_bytes(pid)
    text = "z" * 60_000
    sent = 0
    got = 0
    # 400 x 60 kB = 24 MB to each of 16 stalled readers: ~380 MB if it were buffered.
    for i in range(400):
        writer.send({"type": "send", "chat": uri, "message": text, "client_id": f"w{i}"})
        sent += 1
        if i % 10 == 9:
            await writer.next_of("sent", timeout=10)
            while got < sent - 20:  # the healthy reader keeps up
                assert (await healthy.next_of("message", timeout=10))["seq"] == got + 1
                got += 1
            peak = max(peak, rss_bytes(pid))
    while got < sent:
        assert (await healthy.next_of("message", timeout=10))["seq"] == got + 1
        got += 1
    peak = max(peak, rss_bytes(pid))
    growth = peak - baseline
    print(f"\nRSS {baseline / 2**20:.0f} MB -> peak {peak / 2**20:.0f} MB "
          f"(+{growth / 2**20:.0f} MB) for 16 stalled readers x 24 MB")
    assert growth < 120 * 2**20, growth
    for reader in stalled:
        reader.protocol.transport.resumeProducing()
    codes = [(await closed_within(reader, 15))[0] for reader in stalled]
    # The daemon closed each with 4008; a client that read nothing may never see that
    # frame: past Autobahn's close handshake timeout the daemon drops the connection,
    # and the client's kernel throws the unread bytes away (1006).
    assert set(codes) <= {4008, 1006}, codes
    log = daemon.log.read_text(errors="replace")
    assert log.count("closing a slow reader") == len(stalled)
    assert not healthy.closed.called
    for ws in (healthy, writer):
        await ws.close()


# -- connections that never finish the handshake ------------------------------------------


class _Idle(Protocol):
    """A TCP client that sends ``greeting`` (maybe nothing) and then nothing more."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.lost: defer.Deferred[float] = defer.Deferred()

    def connectionMade(self) -> None:
        if self.greeting:
            self.transport.write(self.greeting)

    def connectionLost(self, reason: Failure) -> None:
        self.lost.callback(time.monotonic())


@pytest_twisted.ensureDeferred
async def test_a_thousand_half_open_connections_are_closed_in_time_and_starve_nobody(
        spawn: Any) -> None:
    timeout = 3.0
    daemon = await spawn("--http-timeout", str(timeout), "--auth-timeout", "2")
    assert daemon.proc is not None
    pid = daemon.proc.pid
    fds_before = open_fds(pid)
    api = Api(daemon.base_url)
    quiet_user = await api.user()
    quiet = await Socket.open(daemon.base_url, quiet_user.token)  # upgraded: not HTTP any more
    greetings = [b"", b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n",
                 b"POST /api/auth/token HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
                 b"G"]
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", daemon.port, timeout=10)
    idle: list[_Idle] = []
    started = time.monotonic()
    for batch in range(20):  # 50 at a time: the listen backlog is 50
        protocols = [_Idle(greetings[(batch * 50 + i) % len(greetings)]) for i in range(50)]
        await defer.gatherResults([connectProtocol(endpoint, p) for p in protocols])
        idle += protocols
        await sleep(0.02)
    opened = time.monotonic() - started
    held = open_fds(pid) - fds_before
    assert held >= 950, held  # the daemon holds them all now
    assert not any(p.lost.called for p in idle)
    # Others are served meanwhile, as fast as ever.
    latencies = []
    for _ in range(5):
        t = time.monotonic()
        alice = await api.user()
        uri = await alice.new_chat()
        ws = await Socket.open(daemon.base_url, alice.token)
        await ws.subscribe(uri)
        ws.send({"type": "send", "chat": uri, "message": "still here", "client_id": "x"})
        assert (await ws.next_of("message"))["message"] == "still here"
        await ws.close()
        latencies.append(time.monotonic() - t)
    assert max(latencies) < 2.0, latencies
    closed = await defer.gatherResults([p.lost for p in idle])
    slowest = max(closed) - started
    print(f"\n1000 half-open connections opened in {opened:.1f} s, all closed "
          f"{slowest:.1f} s after the first (timeout {timeout} s); "
          f"a full sign-up + chat round trip meanwhile: max {max(latencies):.2f} s")
    assert slowest < opened + timeout + 5
    await sleep(0.5)
    assert not quiet.closed.called  # an idle socket outlives the HTTP timeout
    await quiet.close()
    await sleep(0.2)
    assert open_fds(pid) <= fds_before + 5


# -- rate limits -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_flooding_user_is_rate_limited_and_others_stay_fast(spawn: Any) -> None:
    daemon = await spawn("--send-rate", "5", "--send-burst", "10")
    api = Api(daemon.base_url)
    flooder, calm = await api.user(), await api.user()
    uri = await flooder.new_chat()
    await calm.join(uri)
    flood = await Socket.open(daemon.base_url, flooder.token)
    listener = await Socket.open(daemon.base_url, calm.token)
    await listener.subscribe(uri)
    for i in range(300):
        flood.send({"type": "send", "chat": uri, "message": f"spam {i}", "client_id": f"f{i}"})
    replies = [await _reply(flood) for _ in range(300)]
    accepted = [r for r in replies if r["type"] == "sent"]
    limited = [r for r in replies if r.get("code") == "rate_limited"]
    assert len(accepted) + len(limited) == 300
    assert 10 <= len(accepted) <= 25, len(accepted)  # the burst, and a little refill
    http = [await flooder.call("POST", f"/api/chats/{uri}/messages", {"message": "more"})
            for _ in range(20)]
    assert {status for status, _ in http} <= {201, 429}
    assert sum(1 for status, _ in http if status == 429) >= 15
    status, body = await flooder.call("POST", f"/api/chats/{uri}/messages", {"message": "x"})
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert int(flooder.api.last_headers.getRawHeaders("retry-after")[0]) >= 1
    # Meanwhile the calm user posts at its own pace, with low latency.
    calm_ws = await Socket.open(daemon.base_url, calm.token)
    latencies = []
    for i in range(8):
        t = time.monotonic()
        calm_ws.send({"type": "send", "chat": uri, "message": f"calm {i}", "client_id": f"c{i}"})
        assert (await calm_ws.next_of("sent"))["client_id"] == f"c{i}"
        latencies.append(time.monotonic() - t)
        for _ in range(30):  # the flood goes on between the calm sends
            flood.send({"type": "send", "chat": uri, "message": "spam", "client_id": "again"})
        await sleep(0.1)
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.2 and latencies[-1] < 1.0, latencies
    for ws in (flood, listener, calm_ws):
        await ws.close()


async def _reply(ws: Socket) -> dict[str, Any]:
    while True:
        frame = await ws.next()
        if frame["type"] in ("sent", "error"):
            return frame


@pytest_twisted.ensureDeferred
async def test_failed_sign_ins_are_rate_limited_per_username(spawn: Any) -> None:
    daemon = await spawn("--login-failures", "5")
    api = Api(daemon.base_url)
    victim, other = await api.user(password="right password"), await api.user()
    for _ in range(5):
        status, body = await api.call("POST", "/api/auth/token",
                                      {"username": victim.name, "password": "wrong guess"})
        assert status == 401
    for password in ("another guess", "right password"):  # even the right one, for now
        status, body = await api.call("POST", "/api/auth/token",
                                      {"username": victim.name.upper(), "password": password})
        assert status == 429 and body["error"]["code"] == "rate_limited"
        assert 1 <= int(api.last_headers.getRawHeaders("retry-after")[0]) <= 60
    # Refusing is cheap (no hash computed) and nobody else is slowed down.
    t = time.monotonic()
    for _ in range(50):
        status, _ = await api.call("POST", "/api/auth/token",
                                   {"username": victim.name, "password": "guess"})
        assert status == 429
    flood_time = time.monotonic() - t
    t = time.monotonic()
    status, _ = await api.call("POST", "/api/auth/token",
                               {"username": other.name, "password": "correct horse"})
    assert status == 200
    assert time.monotonic() - t < 1.0
    assert flood_time < 5.0, flood_time
    # The victim's existing token still works: the limit is on signing in only.
    assert (await victim.call("GET", "/api/me"))[0] == 200


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_rss_reader_reads_this_process() -> None:
    assert rss_bytes(os.getpid()) > 1_000_000
