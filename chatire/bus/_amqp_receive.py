"""Deliveries off a daemon's AMQP queue: headers checked, handed on with an ack that acks once."""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from twisted.logger import Logger

from chatire.bus._amqp_link import short_name
from chatire.interfaces import BusHandler


async def consume(queue_obj: Any, deliver: Callable[[Any], None],
                  ended: Callable[[str], None]) -> None:
    """Hand each message off the queue to ``deliver``; tell ``ended`` why the consumer ended."""
    while True:
        try:
            message = await queue_obj.get()
        except Exception as e:  # consumer cancelled, channel or connection closed
            ended(f"consumer ended: {e!r}")
            return
        deliver(message)


def deliver(channel: Any, message: Any, followed: Container[str],
            on_message: BusHandler | None, log: Logger) -> None:
    """Hand one delivery to the bus's handler with its ack, or ack it now: a message
    without valid chat and seq headers, of a chat no longer followed, or that the handler
    raised on."""
    tag = message.method.delivery_tag
    acked = False

    def ack() -> None:
        nonlocal acked
        if acked:
            return
        acked = True
        # A closed channel took its exclusive queue along: nothing to ack;
        # the Hub sweeps the store after the reconnect.
        if channel.is_open:
            channel.basic_ack(delivery_tag=tag)

    headers = message.properties.headers
    chat = headers.get("chat") if isinstance(headers, dict) else None
    seq = headers.get("seq") if isinstance(headers, dict) else None
    if not isinstance(chat, str) or type(seq) is not int or seq < 0:
        log.warn(
            "AMQP bus: dropped a message without valid chat/seq headers from {exchange}",
            exchange=short_name(message.method.exchange), delivery_tag=tag,
        )
        ack()
        return
    if chat not in followed or on_message is None:
        ack()  # unfollowed, the binding is going lazily
        return
    try:
        on_message(chat, seq, message.body, ack)
    except Exception:
        log.failure("AMQP bus: message handler failed", chat=short_name(chat), seq=seq)
        ack()
