"""A generator process for the presence, read and subscription scenarios: devices (sockets
of a user, each subscribed to a few chats) opened and closed in groups, their `presence` frames
checked against what they were told on `subscribe`, their `read` frames timed.

The parent sends one command at a time and gets one reply (bench.crowd_gen.Crowd):
``("open", [device, ...])``, ``("close", [device, ...])``, ``("state",)``,
``("reads", start, duration, rate, drain)``, ``("stats",)``, ``("quit",)``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.worker import CONNECT_CONCURRENCY, _cpu, raise_fd_limit, wait_until


@dataclass(frozen=True)
class Device:
    """One socket of a user: subscribes to ``chats``; sends `read` frames to ``marks``."""

    url: str
    token: str
    user: int
    chats: tuple[str, ...]
    marks: str = ""


class DeviceSocket(WSListener):
    """Keeps who is online in each of its chats: the `subscribed` frame's list, then every
    `presence` frame applied to it (one that changes nothing is counted: a duplicate
    online, or an offline for someone not online); times `read` frames."""

    def __init__(self, spec: Device, record: bool) -> None:
        self.spec = spec
        self.record = record
        self.transport: WSTransport | None = None
        self.waiting = set(spec.chats)
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.online: dict[str, set[int]] = {}
        self.duplicate = 0  # online for someone online already
        self.wrong = 0  # offline for someone not online
        self.errors = 0
        self.closed = False
        self.presence: list[tuple[str, int, bool, float]] = []
        self.reads: list[tuple[str, int, float]] = []
        self.frames = 0
        self.sub_sent = 0.0
        self.closed_at = 0.0
        self.marked = 0  # the seq of its last read frame

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("closed before subscribed"))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            return
        body = orjson.loads(frame.get_payload_as_memoryview())
        kind = body["type"]
        self.frames += 1
        if kind == "presence":
            chat, user, online = body["chat"], body["user"]["id"], bool(body["online"])
            users = self.online.setdefault(chat, set())
            if online:
                if user in users:
                    self.duplicate += 1
                users.add(user)
            else:
                if user not in users:
                    self.wrong += 1
                users.discard(user)
            if self.record:
                self.presence.append((chat, user, online, time.monotonic()))
        elif kind == "read":
            self.reads.append((body["chat"], body["seq"], time.monotonic()))
        elif kind == "subscribed":
            self.online[body["chat"]] = set(body["online"])
            self.waiting.discard(body["chat"])
            if not self.waiting and not self.subscribed.done():
                self.subscribed.set_result(None)
        elif kind == "error":
            self.errors += 1

    def send(self, frame: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))


class CrowdWorker:
    """The devices of one process and the commands that drive them."""

    def __init__(self, devices: dict[int, Device], pipe: Connection, record: bool) -> None:
        self.devices = devices
        self.pipe = pipe
        self.record = record
        self.open: dict[int, DeviceSocket] = {}
        self.gone: dict[int, DeviceSocket] = {}

    async def _open_one(self, index: int, gate: asyncio.Semaphore,
                        failures: list[str]) -> None:
        spec = self.devices[index]
        async with gate:
            try:
                listener = DeviceSocket(spec, self.record)
                await ws_connect(lambda: listener, spec.url,
                                 extra_headers={"Authorization": f"Bearer {spec.token}"},
                                 websocket_handshake_timeout=30)
                listener.sub_sent = time.monotonic()
                for chat in spec.chats:
                    listener.send({"type": "subscribe", "chat": chat, "after": None})
                await asyncio.wait_for(listener.subscribed, 60)
                self.open[index] = listener
            except Exception as e:  # counted and reported, never raised
                failures.append(repr(e))

    async def open_some(self, indices: list[int]) -> dict[str, Any]:
        started, cpu0 = time.monotonic(), _cpu()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures: list[str] = []
        await asyncio.gather(*(self._open_one(i, gate, failures) for i in indices))
        return {"opened": len(indices) - len(failures), "failed": len(failures),
                "first_error": failures[0] if failures else "",
                "seconds": time.monotonic() - started, "cpu": _cpu() - cpu0}

    async def close_some(self, indices: list[int]) -> dict[str, Any]:
        for index in indices:
            listener = self.open.pop(index, None)
            if listener is None or listener.transport is None:
                continue
            listener.closed_at = time.monotonic()
            if not listener.transport.is_disconnected:
                listener.transport.send_close()
                listener.transport.disconnect()
            self.gone[index] = listener
        await asyncio.sleep(0.05)
        return {"closed_at": {i: self.gone[i].closed_at for i in indices if i in self.gone}}

    def state(self) -> dict[str, Any]:
        """Each open device's view now, and the presence frames since the last call."""
        devices = {}
        frames = []
        for index, d in self.open.items():
            devices[index] = {"online": {chat: sorted(users) for chat, users in d.online.items()},
                              "duplicate": d.duplicate, "wrong": d.wrong, "errors": d.errors,
                              "closed": d.closed, "sub_sent": d.sub_sent, "frames": d.frames}
            frames += [(index, *p) for p in d.presence]
            d.presence = []
        return {"devices": devices, "frames": frames, "cpu": _cpu()}

    async def reads(self, start: float, duration: float, rate: float,
                    drain: float) -> dict[str, Any]:
        """Each marking device sends `read` frames at ``rate`` a second (seqs one up each
        time); then ``drain`` seconds for the last ones to arrive."""
        cpu0 = _cpu()
        for d in self.open.values():
            d.reads = []
        markers = [d for d in self.open.values() if d.spec.marks]
        phases = [random.Random(d.spec.token).random() for d in markers]
        counts = [0] * len(markers)
        sent: list[tuple[str, int, int, float]] = []
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        end = start + duration
        while True:
            now = time.monotonic()
            elapsed = min(now, end) - start
            for k, (d, phase) in enumerate(zip(markers, phases, strict=True)):
                for _ in range(int(rate * elapsed + phase) - counts[k]):
                    counts[k] += 1
                    d.marked += 1
                    d.send({"type": "read", "chat": d.spec.marks, "seq": d.marked})
                    sent.append((d.spec.marks, d.spec.user, d.marked, time.monotonic()))
            if now >= end:
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(drain)
        arrivals = [(index, *r) for index, d in self.open.items() for r in d.reads]
        return {"sent": sent, "arrivals": arrivals,
                "errors": sum(d.errors for d in self.open.values()), "cpu": _cpu() - cpu0}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.pipe.send({"ready": True})
        while True:
            command = await loop.run_in_executor(None, self.pipe.recv)
            name = command[0]
            if name == "open":
                self.pipe.send(await self.open_some(command[1]))
            elif name == "close":
                self.pipe.send(await self.close_some(command[1]))
            elif name == "state":
                self.pipe.send(self.state())
            elif name == "reads":
                self.pipe.send(await self.reads(*command[1:]))
            elif name == "stats":
                self.pipe.send({"open": sum(not d.closed for d in self.open.values()),
                                "cpu": _cpu()})
            else:
                await self.close_some(list(self.open))
                await wait_until(lambda: all(d.closed for d in self.gone.values()), 5.0)
                self.pipe.send({"closed": True, "cpu": _cpu()})
                return


def run(devices: dict[int, Device], pipe: Connection, record: bool) -> None:
    """The worker process's entry point."""
    import uvloop

    raise_fd_limit()
    try:
        uvloop.run(CrowdWorker(devices, pipe, record).serve())
    except (EOFError, KeyboardInterrupt):
        pass
