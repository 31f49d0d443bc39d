"""A TCP proxy for fault injection: forwards to a target, can stall or cut the traffic."""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure


class _Half(Protocol):
    """One side of a proxied connection; what it reads goes to its peer."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.peer: _Half | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.proxy.pairs.discard(self)
        peer, self.peer = self.peer, None
        if peer is not None:
            peer.peer = None
            if peer.transport is not None:
                peer.transport.loseConnection()

    def pause(self) -> None:
        if self.transport is not None:
            self.transport.pauseProducing()

    def resume(self) -> None:
        if self.transport is not None:
            self.transport.resumeProducing()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()


class _Inbound(_Half):
    """The accepted side: opens the connection to the target (not while stalled)."""

    def connectionMade(self) -> None:
        self.proxy.pairs.add(self)
        if self.proxy.cut_off:
            self.abort()
            return
        self.pause()  # nothing is read until the other side is up and we run
        if self.proxy.stalled:
            self.proxy.held.append(self)
        else:
            self.dial()

    def dial(self) -> None:
        endpoint = TCP4ClientEndpoint(self.proxy.reactor, self.proxy.host, self.proxy.port)
        d = endpoint.connect(Factory.forProtocol(lambda: _Outbound(self.proxy)))
        d.addCallbacks(self._connected, lambda _: self.abort())

    def _connected(self, out: _Outbound) -> None:
        if self.transport is None or self.transport.disconnected:  # type: ignore[attr-defined]
            out.abort()
            return
        self.peer, out.peer = out, self
        self.proxy.pairs.add(out)
        if self.proxy.stalled:
            out.pause()
            return
        self.resume()


class _Outbound(_Half):
    """The side connected to the target."""


class Proxy:
    """Listens on 127.0.0.1 and forwards every connection to ``host:port``.

    ``stall()`` stops forwarding in both directions without closing anything
    (new connections are accepted and held); ``resume()`` lets it all flow again;
    ``cut()`` aborts every connection (and, until ``restore()``, new ones); ``refuse()``
    only the new ones.
    """

    def __init__(self, reactor: Any, host: str, port: int) -> None:
        self.reactor, self.host, self.port = reactor, host, port
        self.pairs: set[_Half] = set()
        self.held: list[_Inbound] = []
        self.stalled = False
        self.cut_off = False
        self._listening: IListeningPort | None = None

    async def start(self) -> int:
        """Listen on a free port of 127.0.0.1; return it."""
        endpoint = TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        self._listening = await endpoint.listen(Factory.forProtocol(lambda: _Inbound(self)))
        port: int = self._listening.getHost().port
        return port

    @property
    def connections(self) -> int:
        """How many proxied connections are open (both sides counted once)."""
        return sum(1 for half in self.pairs if isinstance(half, _Inbound))

    def stall(self) -> None:
        self.stalled = True
        for half in list(self.pairs):
            half.pause()

    def resume(self) -> None:
        self.stalled = False
        for half in list(self.pairs):
            if half.peer is not None:
                half.resume()
        held, self.held = self.held, []
        for inbound in held:
            if inbound.transport is not None:
                inbound.dial()

    def cut(self) -> None:
        """Abort every connection now; refuse new ones until ``restore()``."""
        self.cut_off = True
        for half in list(self.pairs):
            half.abort()
        self.held.clear()

    def refuse(self) -> None:
        """Abort every new connection at once (open ones go on) until ``restore()``."""
        self.cut_off = True

    def restore(self) -> None:
        self.cut_off = False

    async def stop(self) -> None:
        self.cut()
        if self._listening is not None:
            await self._listening.stopListening()
            self._listening = None
