"""Helpers of the security suite: sockets with chosen headers, waiting for a close code."""

from __future__ import annotations

import time
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, connectWS
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, DeferredQueue

from tests.support.client import Socket, _Socket


async def open_ws(base_url: str, headers: dict[str, str] | None = None,
                  origin: str | None = None, path: str = "/ws") -> Socket:
    """A socket opened with exactly these headers (no auth frame sent)."""
    url = base_url.replace("http://", "ws://") + path
    factory = WebSocketClientFactory(url, headers=headers or {}, origin=origin)
    factory.protocol = _Socket
    factory.setProtocolOptions(maxFramePayloadSize=0, maxMessagePayloadSize=0)
    factory.frames = DeferredQueue()
    factory.opened = Deferred()
    factory.closed = Deferred()
    factory.closed_code = None
    socket = Socket(factory)
    connectWS(factory, timeout=5)
    socket.protocol = await factory.opened
    return socket


async def closed_within(socket: Socket, timeout: float) -> tuple[int | None, float]:
    """The close code of a socket and how long it took, failing past ``timeout``."""
    start = time.monotonic()
    d: Deferred[Any] = Deferred()
    socket.closed.addBoth(lambda code: (d.callback(code), code)[1])
    d.addTimeout(timeout, reactor)
    code = await d
    return code, time.monotonic() - start


async def still_open(socket: Socket, seconds: float) -> bool:
    """Whether the socket is still open after ``seconds``."""
    await defer.Deferred.fromCoroutine(_sleep(seconds))
    return not socket.closed.called


async def _sleep(seconds: float) -> None:
    from twisted.internet import task

    await task.deferLater(reactor, seconds, lambda: None)


async def refused(base_url: str, **kw: Any) -> str:
    """The error of a handshake that must fail (raises if it opened)."""
    try:
        socket = await open_ws(base_url, **kw)
    except Exception as e:
        return str(e)
    await socket.close()
    raise AssertionError(f"the handshake was accepted: {kw}")
