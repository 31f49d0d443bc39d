"""A silent database host for tests: accepts TCP connections and never answers."""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure


class _Mute(Protocol):
    """Reads whatever comes (a libpq startup packet) and says nothing."""

    def __init__(self, host: SilentHost) -> None:
        self.host = host

    def connectionMade(self) -> None:
        self.host.accepted += 1
        self.host.open.add(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.host.open.discard(self)


class SilentHost:
    """Listens on 127.0.0.1 in the test's reactor; counts what it accepted and what is open."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.accepted = 0
        self.open: set[_Mute] = set()
        self._listening: IListeningPort | None = None

    async def start(self) -> int:
        """Listen on a free port; return it."""
        endpoint = TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        self._listening = await endpoint.listen(Factory.forProtocol(lambda: _Mute(self)))
        port: int = self._listening.getHost().port
        return port

    async def stop(self) -> None:
        for mute in list(self.open):
            if mute.transport is not None:
                mute.transport.abortConnection()
        if self._listening is not None:
            await self._listening.stopListening()
            self._listening = None
