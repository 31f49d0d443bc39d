"""A node's control events on the bus: batched behind the one waiting for its confirm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatire.frames import CONTROL, EPHEMERAL
from chatire.interfaces import IBus
from chatire.jsonin import encode

#: The most events one bus message carries, and about the most bytes (an event larger
#: than that goes alone): past either, the batch goes at once, beside the one in flight.
MAX_BATCH = 500
MAX_BATCH_BYTES = 256 * 1024


class ControlOutbox:
    """Publishes a node's control events (read marks, presence, leaves...) as batches.

    A batch is one bus message, ``{"node": ..., "events": [...]}``. While one batch waits
    for the broker's confirm, the events that come meanwhile gather into the next: like
    Nagle's algorithm, an event on an idle link goes at once, and under load one broker
    message (one publish, one confirm, one delivery on each node) carries many. A bus that
    confirms at once (the in-memory one) sends each event alone. Events keep their order:
    batches are published in order on one channel. The node's own batches come back from
    the broker (RabbitMQ has no no-local) and are known by their first bytes, unparsed.
    """

    def __init__(self, bus: IBus, node: str,
                 publish_failed: Callable[[Any, str], None]) -> None:
        self._bus = bus
        self._publish_failed = publish_failed
        # b'{"node":"...","events":[' : the opening of every batch this node sends.
        self._head = encode({"node": node})[:-1] + b',"events":['
        self._waiting: list[bytes] = []
        self._bytes = 0
        self._in_flight = 0
        #: Events sent, and the bus messages that carried them (exported as metrics).
        self.events = 0
        self.messages = 0

    def is_own(self, payload: bytes) -> bool:
        """Whether a control message from the bus is one of this node's batches."""
        return payload.startswith(self._head)

    def send(self, event: bytes) -> None:
        """Publish one encoded event: now if no batch is in flight, else with the next."""
        self.events += 1
        self._waiting.append(event)
        self._bytes += len(event)
        if (not self._in_flight or len(self._waiting) >= MAX_BATCH
                or self._bytes >= MAX_BATCH_BYTES):
            self._flush()

    def _flush(self) -> None:
        batch, self._waiting, self._bytes = self._waiting, [], 0
        self._in_flight += 1
        self.messages += 1
        published = self._bus.publish(CONTROL, EPHEMERAL,
                                      self._head + b",".join(batch) + b"]}")
        published.addErrback(self._publish_failed, CONTROL)
        published.addBoth(self._settled)

    def _settled(self, _: object) -> None:
        """A batch was confirmed (or failed, and was counted): the next may go."""
        self._in_flight -= 1
        if self._waiting and not self._in_flight:
            self._flush()
