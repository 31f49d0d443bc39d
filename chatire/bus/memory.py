"""In-process bus for a single node (and for tests: several Hubs on one broker)."""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from chatire.interfaces import BusHandler, IBus


def _no_ack() -> None:
    """Memory deliveries need no acknowledgement."""


@attrs.define
class MemoryBroker:
    """The shared 'exchange' of every MemoryBus attached to it."""

    buses: list[MemoryBus] = attrs.field(factory=list)

    def route(self, chat_uri: str, seq: int, payload: bytes) -> None:
        for bus in list(self.buses):
            bus.deliver(chat_uri, seq, payload)


@implementer(IBus)
class MemoryBus:
    """IBus inside one process: publish hands the message to followers on the next turn."""

    def __init__(self, reactor: IReactorTime, broker: MemoryBroker | None = None) -> None:
        self._reactor = reactor
        self._broker = broker if broker is not None else MemoryBroker()
        self._followed: set[str] = set()
        self._on_message: BusHandler | None = None
        self.connected = False

    def start(self, on_message: BusHandler, on_reconnect: Callable[[], None]) -> None:
        self._on_message = on_message
        self._broker.buses.append(self)
        self.connected = True
        on_reconnect()

    def stop(self) -> Deferred[None]:
        if self in self._broker.buses:
            self._broker.buses.remove(self)
        self.connected = False
        return succeed(None)

    def publish(self, chat_uri: str, seq: int, payload: bytes) -> Deferred[None]:
        self._reactor.callLater(0, self._broker.route, chat_uri, seq, payload)
        return succeed(None)

    def follow(self, chat_uri: str) -> None:
        self._followed.add(chat_uri)

    def unfollow(self, chat_uri: str) -> None:
        self._followed.discard(chat_uri)

    def remove(self, chat_uri: str) -> None:
        self._followed.discard(chat_uri)  # the broker in memory keeps nothing per chat

    def deliver(self, chat_uri: str, seq: int, payload: bytes) -> None:
        """Called by the broker: pass on a message of a followed chat."""
        if self._on_message is not None and chat_uri in self._followed:
            self._on_message(chat_uri, seq, payload, _no_ack)
