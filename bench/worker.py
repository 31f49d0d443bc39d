"""A generator process: many WebSocket clients on one uvloop (picows), driven over a pipe.

The parent sends commands, the worker answers each with one reply:

- ``("go", start, duration, rate_scale, mixed)``: its senders send from the monotonic time
  ``start`` for ``duration`` seconds, then wait for their ``sent`` replies; reply
  ``{"committed": {chat: [seq, ...]}, ...}``. With ``mixed`` > 0, that share of each
  sender's events are edits, reactions and deletes (in turn) of its own earlier messages,
  over HTTP (the timeline API has no socket frames for them).
- ``("drain", {chat: last_seq}, timeout)``: wait until every subscription saw the
  chat's last seq (or the timeout); reply with the step's receive statistics and
  reset them.
- ``("stats",)``: reply with connection counts; ``("close",)``: close all and exit.
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

#: Connections being opened at once by one worker.
CONNECT_CONCURRENCY = 64
#: The other events of the mixed load, in turn.
OPS = ("edit", "react", "delete")
#: The reaction the mixed load adds (URL-encoded thumbs up).
EMOJI = "%F0%9F%91%8D"


@dataclass(frozen=True)
class Receiver:
    """A socket that subscribes to one chat (live only) and checks what it gets."""

    url: str
    token: str
    chat: str


@dataclass(frozen=True)
class Sender:
    """A socket that sends ``rate`` messages a second to one chat.

    With a ``window``, it instead keeps that many sends unanswered until the end
    (closed loop: as fast as the daemon commits).
    """

    url: str
    token: str
    chat: str
    rate: float
    window: int = 0


@dataclass
class Job:
    """What one worker process runs."""

    index: int
    receivers: list[Receiver]
    senders: list[Sender]
    message_chars: int = 100
    fd_limit: int = 0


def raise_fd_limit(wanted: int = 0) -> int:
    """Raise this process's soft open-file limit (to the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted <= 0 else min(hard, max(soft, wanted))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Tally:
    """What the receivers of one worker saw during one step."""

    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    errors: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))


class ReceiverSocket(WSListener):
    """Counts message frames of its chat: in order, duplicated, out of order."""

    def __init__(self, tally: Tally, chat: str) -> None:
        self.tally = tally
        self.chat = chat
        self.transport: WSTransport | None = None
        self.subscribed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.last = -1
        self.unique = 0
        self.base = 0
        self.closed = False

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
        tally = self.tally
        if kind in ("message", "event"):
            now = time.monotonic()
            seq = body["seq"]
            last = self.last
            if seq == last + 1:
                self.unique += 1
            elif seq <= last:
                tally.duplicates += 1
                return
            else:
                tally.out_of_order += 1
                self.unique += 1
            self.last = seq
            tally.received += 1
            if tally.first_at == 0.0:
                tally.first_at = now
            tally.last_at = now
            if kind == "message" or body["kind"] == "edit":  # the others carry no time
                text = body["message"]
                tally.latencies.append(now - float(text[:text.index(" ")]))
        elif kind == "subscribed":
            self.last = self.base = body["last_seq"]
            if not self.subscribed.done():
                self.subscribed.set_result(self.last)
        elif kind == "error":
            tally.errors += 1


class SenderSocket(WSListener):
    """Sends message frames when told; counts the ``sent`` replies by seq."""

    def __init__(self, spec: Sender, tag: str, pad: str) -> None:
        self.spec = spec
        self.tag = tag
        self.pad = pad
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.count = 0
        self.committed: list[int] = []
        self.errors = 0
        self.replies = 0
        self.round_trips: array[float] = array("d")
        self.sent_at: dict[str, float] = {}
        self.until = 0.0
        self.mixed = 0.0  # the share of events that are OPS, this step
        self.session: aiohttp.ClientSession | None = None
        self.base = spec.url.replace("ws://", "http://", 1).rsplit("/ws", 1)[0]
        self.targets: deque[int] = deque()  # own messages no op touched yet
        self.ops = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.generation = 0  # the step: an op answered after its step ended is not counted

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before ready"))

    def send(self, chat: str) -> None:
        assert self.transport is not None
        self.count += 1
        mixed = self.mixed
        if (mixed and self.targets and self.session is not None
                and int(self.count * mixed) > int((self.count - 1) * mixed)):
            task = asyncio.get_running_loop().create_task(
                self._op(chat, self.targets.popleft(), self.generation))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        client_id = f"{self.tag}.{self.count}"
        now = time.monotonic()
        self.sent_at[client_id] = now
        frame = {"type": "send", "chat": chat, "client_id": client_id,
                 "message": f"{now:.6f} {self.pad}"}
        self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        body = orjson.loads(frame.get_payload_as_memoryview())
        kind = body["type"]
        if kind == "sent":
            self.replies += 1
            self.committed.append(body["seq"])
            self.targets.append(body["seq"])
            sent = self.sent_at.pop(body["client_id"], None)
            now = time.monotonic()
            if sent is not None:
                self.round_trips.append(now - sent)
            if self.spec.window and now < self.until:
                self.send(self.spec.chat)
        elif kind == "ready":
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "error":
            self.errors += 1
            self.replies += 1
            if self.spec.window and time.monotonic() < self.until:
                self.send(self.spec.chat)


    async def _op(self, chat: str, target: int, generation: int) -> None:
        """One edit, reaction or delete of an own message over HTTP; counted as a reply of
        its step (a late one stays unanswered there and is not counted in the next)."""
        assert self.session is not None
        op = OPS[self.ops % len(OPS)]
        self.ops += 1
        url = f"{self.base}/api/chats/{chat}/messages/{target}"
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {self.spec.token}"}
        try:
            if op == "edit":
                call = self.session.patch(url, headers=headers,
                                          json={"message": f"{started:.6f} edited"})
            elif op == "react":
                call = self.session.put(f"{url}/reactions/{EMOJI}", headers=headers)
            else:
                call = self.session.delete(url, headers=headers)
            async with call as reply:
                body = await reply.json(loads=orjson.loads) if reply.status == 200 else None
            if generation != self.generation:
                return
            if body is None or body.get("event") is None:
                self.errors += 1
            else:
                self.committed.append(body["event"]["seq"])
                self.round_trips.append(time.monotonic() - started)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            if generation != self.generation:
                return
            self.errors += 1
        self.replies += 1
        if self.spec.window and time.monotonic() < self.until:
            self.send(self.spec.chat)


class Worker:
    """The sockets of one job and the commands that drive them."""

    def __init__(self, job: Job, pipe: Connection) -> None:
        self.job = job
        self.pipe = pipe
        self.tally = Tally()
        self.receivers: list[ReceiverSocket] = []
        self.senders: list[SenderSocket] = []
        self.connect_failures = 0
        self.first_error = ""
        self.session: aiohttp.ClientSession | None = None

    async def _open_receiver(self, spec: Receiver, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                listener = ReceiverSocket(self.tally, spec.chat)
                await ws_connect(
                    lambda: listener, spec.url,
                    extra_headers={"Authorization": f"Bearer {spec.token}"},
                    websocket_handshake_timeout=30)
                assert listener.transport is not None
                listener.transport.send(WSMsgType.TEXT, orjson.dumps(
                    {"type": "subscribe", "chat": spec.chat, "after": None}))
                await asyncio.wait_for(listener.subscribed, 60)
                self.receivers.append(listener)
            except Exception as e:  # counted and reported, never raised
                self.connect_failures += 1
                self.first_error = self.first_error or repr(e)

    async def _open_sender(self, spec: Sender, number: int) -> None:
        pad = "x" * max(0, self.job.message_chars - 18)
        tag = f"w{self.job.index}s{number}"
        listener = SenderSocket(spec, tag, pad)
        await ws_connect(
            lambda: listener, spec.url,
            extra_headers={"Authorization": f"Bearer {spec.token}"},
            websocket_handshake_timeout=30)
        await asyncio.wait_for(listener.ready, 60)
        self.senders.append(listener)

    async def open_all(self) -> dict[str, Any]:
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        await asyncio.gather(*(self._open_receiver(r, gate) for r in self.job.receivers))
        opened = time.monotonic()
        await asyncio.gather(*(self._open_sender(s, i)
                               for i, s in enumerate(self.job.senders)))
        return {"receivers": len(self.receivers), "senders": len(self.senders),
                "connect_failures": self.connect_failures, "first_error": self.first_error,
                "connect_seconds": opened - started, "cpu": _cpu()}

    async def go(self, start: float, duration: float, scale: float,
                 mixed: float = 0.0) -> dict[str, Any]:
        cpu0 = _cpu()
        if mixed and self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        for sender in self.senders:
            sender.generation += 1
            sender.mixed = mixed
            sender.session = self.session
            sender.count = 0
            sender.replies = 0
            sender.errors = 0
            sender.committed = []
            sender.round_trips = array("d")
            sender.tag = f"{sender.tag.split('@')[0]}@{start:.3f}"
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        end = start + duration
        tick = 0.002
        paced = [s for s in self.senders if not s.spec.window]
        # Each paced sender starts at its own point of its interval. In lockstep (as
        # before) every sender's next message fell due at the same instant: 100
        # chats at 2 messages a second each were bursts of 100 every 500 ms, and
        # the latency measured the burst, not the rate.
        phases = [random.Random(sender.tag).random() for sender in paced]
        for sender in self.senders:
            if sender.spec.window:
                sender.until = end
                for _ in range(sender.spec.window):
                    sender.send(sender.spec.chat)
        while True:
            now = time.monotonic()
            elapsed = min(now, end) - start
            for sender, phase in zip(paced, phases, strict=True):
                due = int(sender.spec.rate * scale * elapsed + phase) - sender.count
                for _ in range(min(due, 2000)):
                    sender.send(sender.spec.chat)
            if now >= end:
                break
            await asyncio.sleep(tick)
        await wait_until(lambda: all(s.replies >= s.count for s in self.senders), 15.0)
        committed: dict[str, list[int]] = {}
        round_trips = array("d")
        for sender in self.senders:
            committed.setdefault(sender.spec.chat, []).extend(sender.committed)
            round_trips.extend(sender.round_trips)
        return {"committed": committed,
                "attempted": sum(s.count for s in self.senders),
                "send_errors": sum(s.errors for s in self.senders),
                "unanswered": sum(s.count - s.replies for s in self.senders),
                "round_trips": round_trips.tobytes(), "cpu": _cpu() - cpu0}

    async def drain(self, last: dict[str, int], timeout: float) -> dict[str, Any]:
        cpu0 = _cpu()

        def caught_up() -> bool:
            return all(r.closed or r.last >= last.get(r.chat, 0) for r in self.receivers)

        await wait_until(caught_up, timeout)
        tally, self.tally = self.tally, Tally()
        lost = 0
        for receiver in self.receivers:
            expected = last.get(receiver.chat, receiver.base) - receiver.base
            lost += max(0, expected - receiver.unique)
            receiver.base = receiver.last
            receiver.unique = 0
            receiver.tally = self.tally
        return {"received": tally.received, "duplicates": tally.duplicates,
                "out_of_order": tally.out_of_order, "lost": lost, "errors": tally.errors,
                "closed": sum(r.closed for r in self.receivers),
                "first_at": tally.first_at, "last_at": tally.last_at,
                "latencies": tally.latencies.tobytes(), "cpu": _cpu() - cpu0}

    def close_all(self) -> None:
        listeners: list[ReceiverSocket | SenderSocket] = [*self.receivers, *self.senders]
        for listener in listeners:
            if listener.transport is not None and not listener.transport.is_disconnected:
                listener.transport.send_close()
                listener.transport.disconnect()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.pipe.send(await self.open_all())
        while True:
            command = await loop.run_in_executor(None, self.pipe.recv)
            name = command[0]
            if name == "go":
                self.pipe.send(await self.go(*command[1:]))
            elif name == "drain":
                self.pipe.send(await self.drain(*command[1:]))
            elif name == "stats":
                self.pipe.send({"open": sum(not r.closed for r in self.receivers),
                                "cpu": _cpu()})
            else:
                self.close_all()
                if self.session is not None:
                    await self.session.close()
                await asyncio.sleep(0.2)
                self.pipe.send({"closed": True, "cpu": _cpu()})
                return


async def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll a condition every 10 ms until it holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(job: Job, pipe: Connection) -> None:
    """The worker process's entry point."""
    import uvloop

    raise_fd_limit(job.fd_limit)
    try:
        uvloop.run(Worker(job, pipe).serve())
    except (EOFError, KeyboardInterrupt):
        pass
