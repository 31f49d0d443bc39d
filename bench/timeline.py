"""The timeline scenario's two clients: timed `events` pages (aiohttp) and one resume (picows).

Both check what they get: every page holds exactly the seqs asked for, and the resume
counts each seq's arrival as in order, duplicated, out of order or lost, like the
generator's receivers do for live fanout.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.daemon import proc_rss_kib
from bench.generator import percentile

#: The largest `limit` PROTOCOL.md allows on GET /api/chats/{uri}/events.
PAGE_LIMIT = 500


async def _page(session: aiohttp.ClientSession, base_url: str, uri: str, after: int,
                limit: int, last_seq: int) -> tuple[float, int]:
    """One checked page: (milliseconds to its last byte, its size in bytes)."""
    started = time.perf_counter()
    async with session.get(f"{base_url}/api/chats/{uri}/events",
                           params={"after": after, "limit": limit}) as reply:
        raw = await reply.read()
    elapsed = (time.perf_counter() - started) * 1000
    if reply.status != 200:
        raise RuntimeError(f"events after {after}: {reply.status} {raw[:200]!r}")
    body = orjson.loads(raw)
    seqs = [event["seq"] for event in body["events"]]
    if (seqs != list(range(after + 1, min(after + limit, last_seq) + 1))
            or body["has_more"] != (after + limit < last_seq)):
        raise RuntimeError(f"events after {after}: seqs {seqs[:3]}..{seqs[-3:]}, "
                           f"has_more {body['has_more']}")
    return elapsed, len(raw)


async def _pages(base_url: str, token: str, uri: str, last_seq: int, repeats: int,
                 limit: int) -> dict[str, Any]:
    positions = {"start": 0, "middle": last_seq // 2, "end": max(0, last_seq - limit)}
    figures: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        for _ in range(5):  # warm-up: the connection, the daemon's and the store's caches
            await _page(session, base_url, uri, last_seq // 3, limit, last_seq)
        for name, after in positions.items():
            await _page(session, base_url, uri, after, limit, last_seq)
            times: list[float] = []
            size = 0
            for _ in range(repeats):
                elapsed, size = await _page(session, base_url, uri, after, limit, last_seq)
                times.append(elapsed)
            ordered = sorted(times)
            figures[name] = {"after": after, "p50": round(percentile(ordered, 0.5), 2),
                             "p99": round(percentile(ordered, 0.99), 2),
                             "max": round(ordered[-1], 2), "kib": round(size / 1024, 1)}
    return figures


def time_pages(base_url: str, token: str, uri: str, last_seq: int, repeats: int,
               limit: int = PAGE_LIMIT) -> dict[str, Any]:
    """GET .../events?after=X&limit=500 ``repeats`` times at the start, middle and end."""
    return asyncio.run(_pages(base_url, token, uri, last_seq, repeats, limit))


@dataclass
class Replay:
    """What one resume received."""

    last_seq: int = 0
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    lost: int = 0
    errors: int = 0
    close_code: int | None = None
    frame_bytes: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # not a Counter: asdict mangles one
    first_s: float = 0.0  # subscribe sent -> first timeline frame
    last_s: float = 0.0  # subscribe sent -> the chat's last seq
    rss_sampled_peak_kib: int = 0


class _ReplaySocket(WSListener):
    def __init__(self, replay: Replay, uri: str) -> None:
        self.replay = replay
        self.uri = uri
        self.transport: WSTransport | None = None
        self.expected = 1
        self.sent_at = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.sent_at = time.monotonic()
        transport.send(WSMsgType.TEXT, orjson.dumps(
            {"type": "subscribe", "chat": self.uri, "after": 0}))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        replay = self.replay
        if frame.msg_type == WSMsgType.CLOSE:
            if not self.done.done():  # the daemon closed first (4008: a slow reader)
                replay.close_code = frame.get_close_code().value
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_memoryview()
        body = orjson.loads(payload)
        kind = body["type"]
        if kind in ("message", "event"):
            replay.frame_bytes += len(payload)
            kind = body.get("kind", "message")
            replay.kinds[kind] = replay.kinds.get(kind, 0) + 1
            seq = body["seq"]
            if seq < self.expected:
                replay.duplicates += 1
                return
            if seq > self.expected:
                replay.out_of_order += 1
            replay.received += 1
            self.expected = seq + 1
            now = time.monotonic() - self.sent_at
            replay.first_s = replay.first_s or now
            replay.last_s = now
            if seq >= replay.last_seq and replay.last_seq and not self.done.done():
                self.done.set_result(None)
        elif kind == "subscribed":
            replay.last_seq = body["last_seq"]
        elif kind == "error":
            replay.errors += 1
            if not self.done.done():
                self.done.set_exception(RuntimeError(f"error frame: {body}"))


async def _resume(ws_url: str, token: str, uri: str, pid: int, timeout: float) -> Replay:
    replay = Replay()
    listener = _ReplaySocket(replay, uri)

    async def sample() -> None:
        while True:
            replay.rss_sampled_peak_kib = max(replay.rss_sampled_peak_kib, proc_rss_kib(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        transport, _ = await ws_connect(
            lambda: listener, ws_url, extra_headers={"Authorization": f"Bearer {token}"},
            websocket_handshake_timeout=30, max_frame_size=16 * 1024 * 1024)
        try:
            await asyncio.wait_for(listener.done, timeout)
        except TimeoutError:
            pass
        transport.send_close()
        transport.disconnect()
    finally:
        sampler.cancel()
    replay.lost = max(0, replay.last_seq - replay.received)
    return replay


def resume(ws_url: str, token: str, uri: str, pid: int, timeout: float = 120.0) -> Replay:
    """One socket subscribes with ``after: 0`` and reads the whole timeline; the daemon's
    RSS (``pid``) is sampled every 20 ms meanwhile."""
    import uvloop

    return uvloop.run(_resume(ws_url, token, uri, pid, timeout))
