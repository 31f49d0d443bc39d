"""Message buses: how committed messages travel between daemons (IBus)."""

from __future__ import annotations

from urllib.parse import urlsplit

from twisted.internet.interfaces import IReactorTime

from chatire.interfaces import IBus


def bus_from_url(url: str, reactor: IReactorTime) -> IBus:
    """The bus a ``--bus`` URL names: ``memory://`` or ``amqp://...`` (several AMQP URLs,
    separated by commas, for the nodes of one cluster)."""
    schemes = {urlsplit(part.strip()).scheme for part in url.split(",") if part.strip()}
    if len(schemes) > 1 or (len(url.split(",")) > 1 and schemes - {"amqp", "amqps"}):
        raise ValueError("--bus: several URLs must all be amqp:// or amqps:// (the nodes "
                         "of one RabbitMQ cluster)")
    scheme = schemes.pop() if schemes else ""
    if scheme == "memory":
        from chatire.bus.memory import MemoryBus

        return MemoryBus(reactor)
    if scheme in ("amqp", "amqps"):
        from chatire.bus.amqp import AMQPBus

        return AMQPBus(url, reactor)
    raise ValueError(f"--bus: unsupported URL scheme {scheme!r} (use memory:// or amqp://)")
