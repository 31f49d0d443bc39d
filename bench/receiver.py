"""The notify scenario's webhook receiver: a process of its own that answers 200 at once and
counts every notification id it is sent (aiohttp on uvloop), driven over a pipe.

Commands: ``("stats",)`` replies with the counts and the monotonic arrival time of each
id's first copy; ``("arrivals",)`` with ``{id: [wall-clock time of its first copy,
copies]}``; ``("close",)`` stops it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from chatire.testing import free_port


@dataclass
class Received:
    """What the receiver got so far."""

    posts: int = 0
    bad: int = 0  # not a notification body
    counts: dict[str, int] = field(default_factory=dict)
    first_at: list[float] = field(default_factory=list)  # one per distinct id, in order
    wall_at: dict[str, float] = field(default_factory=dict)  # id -> time.time() of its first

    @property
    def distinct(self) -> int:
        return len(self.counts)

    @property
    def duplicates(self) -> int:
        return self.posts - self.bad - len(self.counts)


async def _serve(port: int, pipe: Connection) -> None:
    import orjson
    from aiohttp import web

    got = Received()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        got.posts += 1
        try:
            nid = orjson.loads(body)["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            got.bad += 1
            return web.Response(status=200)
        seen = got.counts.get(nid, 0)
        got.counts[nid] = seen + 1
        if not seen:
            got.first_at.append(time.monotonic())
            got.wall_at[nid] = time.time()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    pipe.send("ready")
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "stats":
            pipe.send({"posts": got.posts, "bad": got.bad, "distinct": got.distinct,
                       "duplicates": got.duplicates, "first_at": list(got.first_at)})
        elif command[0] == "arrivals":
            pipe.send({nid: [at, got.counts[nid]] for nid, at in got.wall_at.items()})
        else:
            await runner.cleanup()
            pipe.send("closed")
            return


def _run(port: int, pipe: Connection) -> None:
    import uvloop

    try:
        uvloop.run(_serve(port, pipe))
    except (EOFError, KeyboardInterrupt):
        pass


class HookReceiver:
    """The receiver process and its URL (``http://127.0.0.1:PORT/hook``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        context = multiprocessing.get_context("fork")
        self._pipe, theirs = context.Pipe()
        self._proc = context.Process(target=_run, args=(self.port, theirs), daemon=True)
        self._proc.start()
        theirs.close()
        if not self._pipe.poll(30) or self._pipe.recv() != "ready":
            raise RuntimeError("the webhook receiver did not start")

    def stats(self) -> dict[str, Any]:
        self._pipe.send(("stats",))
        if not self._pipe.poll(30):
            raise TimeoutError("the webhook receiver did not answer")
        reply: dict[str, Any] = self._pipe.recv()
        return reply

    def arrivals(self) -> dict[str, list[float]]:
        """``{id: [wall-clock time of its first copy, copies]}`` so far."""
        self._pipe.send(("arrivals",))
        if not self._pipe.poll(30):
            raise TimeoutError("the webhook receiver did not answer")
        reply: dict[str, list[float]] = self._pipe.recv()
        return reply

    def close(self) -> None:
        """Stop the receiver; end its process by its own handle if it lingers."""
        try:
            self._pipe.send(("close",))
            if self._pipe.poll(10):
                self._pipe.recv()
        except (OSError, EOFError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


@contextmanager
def hook_receiver() -> Iterator[HookReceiver]:
    """A running receiver, stopped afterwards."""
    receiver = HookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()
