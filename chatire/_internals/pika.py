"""pika's private names chatire relies on: a TwistedChannel's own Channel, a connection's error."""

from __future__ import annotations

from pika import connection
from pika.adapters import twisted_connection
from pika.adapters.twisted_connection import TwistedChannel, TwistedProtocolConnection

from chatire._internals import check, has

NAMES = {
    "TwistedChannel._channel": has(TwistedChannel, "_channel", TwistedChannel),
    "TwistedProtocolConnection._impl": has(
        TwistedProtocolConnection, "_impl", TwistedProtocolConnection),
    "Connection._error": has(connection.Connection, "_error", connection.Connection,
                             twisted_connection),
}
FAST = check("pika", NAMES)


def _ignore(_: object) -> None:
    return None


def declare_nowait(chan: TwistedChannel, exchange: str) -> None:
    """Declare a durable fanout exchange without waiting for the reply.

    pika's own Channel sends it nowait (``callback=None``); the public TwistedChannel
    waits for each reply in turn. A failure closes the channel.
    """
    raw = getattr(chan, "_channel", None) if FAST else None
    if raw is not None:
        raw.exchange_declare(exchange=exchange, exchange_type="fanout", durable=True)
        return
    chan.exchange_declare(exchange=exchange, exchange_type="fanout",
                          durable=True).addErrback(_ignore)


def bind_nowait(chan: TwistedChannel, queue: str | None, exchange: str) -> None:
    """Bind a queue to an exchange without waiting for the reply.

    pika's own Channel sends it nowait (``callback=None``); the public TwistedChannel
    waits for each reply in turn. A failure closes the channel.
    """
    raw = getattr(chan, "_channel", None) if FAST else None
    if raw is not None:
        raw.queue_bind(queue=queue, exchange=exchange)
        return
    chan.queue_bind(queue=queue, exchange=exchange).addErrback(_ignore)


def pending_error(conn: TwistedProtocolConnection) -> object:
    """Why pika thinks the connection ended (the broker's Close reason), or None."""
    if not FAST:
        return None
    return getattr(getattr(conn, "_impl", None), "_error", None)
