"""What the Hub keeps per subscription: the connection's face, the order state, the held acks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs

from chatire.model import User


class Subscriber(Protocol):
    """A live connection as the Hub sees it (the WebSocket protocol implements it)."""

    user: User | None
    token_hash: str | None

    def deliver(self, frame: Any) -> None:
        """Hand a prepared message frame to the transport."""

    def send_json(self, body: dict[str, Any]) -> None:
        """Send one control frame."""

    def send_frame(self, frame: Any) -> None:
        """Send one control frame prepared once for many connections (not a delivery)."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code."""


class Ack:
    """Acks one bus delivery once every holder let go of it."""

    __slots__ = ("ack", "holders")

    def __init__(self, ack: Callable[[], None]) -> None:
        self.ack = ack
        self.holders = 1

    def hold(self) -> Ack:
        self.holders += 1
        return self

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            self.ack()


@attrs.define(eq=False)
class Subscription:
    """One connection following one chat: what it was sent, what waits to be sent."""

    conn: Subscriber
    chat: str
    last_sent: int = 0
    target: int = 0
    filling: bool = True
    live: bool = True
    since: int = 0  # the chat's last_seq when the subscription was made
    read_told: int = 0  # the highest read_seq this socket marked or was told (never lower)
    pending: dict[int, tuple[bytes, Ack | None]] = attrs.Factory(dict)


@attrs.define(eq=False)
class PendingCheck:
    """A subscribe waiting for ChatService's word; a leave meanwhile turns it down."""

    left: bool = False
