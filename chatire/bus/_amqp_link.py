"""Pieces of the AMQP bus: URL parsing, exchange names, the connection protocol, the outbox."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import attrs
import pika
from pika.adapters.twisted_connection import TwistedChannel, TwistedProtocolConnection
from pika.exceptions import NackError
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.ssl import optionsForClientTLS
from twisted.python.failure import Failure
from zope.interface import implementer

from chatire._internals.pika import pending_error
from chatire.bus._amqp_binds import Binder
from chatire.urls import redacted
from chatire.waiters import Waiters

EXCHANGE_PREFIX = "chatire.chat."
DEFAULT_HEARTBEAT = 10
# An AMQP exchange name is at most 255 characters of these.
_CHAT_URI = re.compile(r"[A-Za-z0-9_.:-]{1,240}\Z")


def _ignore(_result: object) -> None:
    """Swallow a result nobody waits for."""


def exchange_name(chat_uri: str) -> str:
    """The fanout exchange of a chat; ValueError if the uri cannot name one."""
    if not isinstance(chat_uri, str) or not _CHAT_URI.match(chat_uri):
        raise ValueError(f"chat uri not usable as an AMQP exchange name: {chat_uri!r}")
    return EXCHANGE_PREFIX + chat_uri


def short_name(name: str) -> str:
    """A chat uri (or its exchange) cut short for logs: knowing a uri is the invitation."""
    return name.removeprefix(EXCHANGE_PREFIX)[:6] + "..."


def parse_url(url: str) -> tuple[Any, bool]:
    """``(pika.URLParameters, use_tls)`` for an ``amqp://`` or ``amqps://`` URL.

    The heartbeat is the URL's ``?heartbeat=`` or else DEFAULT_HEARTBEAT seconds.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as e:
        raise ValueError(f"--bus: malformed AMQP URL {redacted(url)!r}: {e}") from None
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"--bus: not an AMQP URL (amqp:// or amqps://): {redacted(url)!r}")
    try:
        params = pika.URLParameters(url)
    except (ValueError, TypeError) as e:
        raise ValueError(f"--bus: malformed AMQP URL {redacted(url)!r}: {e}") from None
    if "heartbeat" not in parse_qs(parts.query):
        params.heartbeat = DEFAULT_HEARTBEAT
    return params, parts.scheme == "amqps"


def make_endpoint(
    reactor: IReactorTime, params: Any, tls: bool, timeout: float
) -> IStreamClientEndpoint:
    """The client endpoint for the broker named by ``params``."""
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, params.host, params.port, timeout=timeout
    )
    if tls:
        endpoint = wrapClientTLS(optionsForClientTLS(params.host), endpoint)
    return endpoint


class LinkOwner(Protocol):
    """What a Link reports to: the bus."""

    def link_made(self, link: Link) -> None:
        """A TCP connection is up; the AMQP set-up can start."""

    def link_lost(self, link: Link, reason: Failure) -> None:
        """The TCP connection is gone."""

    def requeue(self, item: Pending) -> None:
        """A publish could not be confirmed on this link: keep it for the next."""

    def nacked(self, failure: Failure, item: Pending) -> None:
        """The broker refused a publish."""


class Link(TwistedProtocolConnection):
    """One AMQP connection and what the bus set up on it (channel, queue, bindings)."""

    def __init__(self, params: Any, reactor: IReactorTime, owner: LinkOwner) -> None:
        super().__init__(params, custom_reactor=reactor)
        self._owner = owner
        self._lost_waiters: Waiters[None] = Waiters()
        self.chan: TwistedChannel | None = None  # (.channel() is pika's: open one)
        self.binder: Binder | None = None  # binds on channels of its own
        self.queue: str | None = None
        self.declared: set[str] = set()  # chat uris whose exchange exists (this connection)
        self.declaring: dict[str, list[Pending]] = {}  # publishes waiting for a declare
        self.bound: set[str] = set()  # chat uris bound to our queue (this connection)
        self.up = False  # set-up finished: channel, queue, bindings, consumer
        self.broken = False  # given up on: being closed, a reconnect follows
        self.lost = False  # TCP connection gone
        self.abort_timer: IDelayedCall | None = None  # cuts a close the broker ignores
        self.close_reason: object = None  # pika's word on why the connection ended

    @property
    def usable(self) -> bool:
        """Whether publishes and binds may go out on this link now."""
        return self.up and not self.broken and not self.lost

    def when_lost(self) -> Deferred[None]:
        """A Deferred that fires once the TCP connection is gone."""
        if self.lost:
            return succeed(None)
        return self._lost_waiters.wait()

    def abort(self) -> None:
        """Cut the TCP connection now."""
        if not self.lost and self.transport is not None:
            self.transport.abortConnection()

    def send(self, item: Pending) -> None:
        """Publish once the chat's exchange is declared on this connection.

        ``item.done`` fires on the broker's confirm; a Nack goes to the owner's
        ``nacked``, an item the link could not get confirmed (it closed) to its
        ``requeue``.
        """
        uri = item.chat_uri
        if uri in self.declared:
            self._publish(item)
            return
        waiting = self.declaring.get(uri)
        if waiting is None:
            waiting = self._declare(uri)
        waiting.append(item)

    def unbind(self, uri: str) -> Deferred[None]:
        """Unbind our queue from the chat's exchange."""
        assert self.chan is not None
        self.bound.discard(uri)
        d: Deferred[None] = self.chan.queue_unbind(queue=self.queue, exchange=exchange_name(uri))
        return d.addCallback(_ignore)

    def delete_exchange(self, uri: str) -> Deferred[None]:
        """Delete the chat's exchange (idempotent on RabbitMQ; its bindings go with it)."""
        assert self.chan is not None
        self.bound.discard(uri)
        self.declared.discard(uri)
        d: Deferred[None] = self.chan.exchange_delete(exchange=exchange_name(uri))
        return d.addCallback(_ignore)

    def _declare(self, uri: str) -> list[Pending]:
        """Declare the exchange; publishes wait in the returned list until DeclareOk.

        pika sends one synchronous method (declare, bind) at a time and queues
        the others, but sends basic_publish at once: a publish must wait for
        its exchange's DeclareOk, else it may reach the broker first (404).
        """
        assert self.chan is not None
        waiting: list[Pending] = []
        self.declaring[uri] = waiting

        def declared(_: object) -> None:
            self.declared.add(uri)
            for item in self.declaring.pop(uri, []):
                self._publish(item)

        def failed(_: Failure) -> None:
            for item in self.declaring.pop(uri, []):
                self._owner.requeue(item)

        d = self.chan.exchange_declare(
            exchange=exchange_name(uri), exchange_type="fanout", durable=True
        )
        d.addCallbacks(declared, failed)
        return waiting

    def _publish(self, item: Pending) -> None:
        assert self.chan is not None
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=1,  # the queues are transient: persisting buys nothing
            headers={"chat": item.chat_uri, "seq": item.seq},
        )
        try:
            d = self.chan.basic_publish(
                exchange=exchange_name(item.chat_uri), routing_key="",
                body=item.payload, properties=properties,
            )
        except Exception:
            self._owner.requeue(item)  # the channel is closing
            return

        def not_confirmed(failure: Failure) -> None:
            if failure.check(NackError):
                self._owner.nacked(failure, item)
            else:
                self._owner.requeue(item)  # the link closed before the confirm

        d.addCallbacks(lambda _: item.done.callback(None), not_confirmed)

    def connectionMade(self) -> None:
        # pika's own connectors set TCP_NODELAY; on Twisted the socket is Twisted's,
        # and with Nagle on a publish waits for the broker's (delayed) ACK of the
        # previous one whenever they follow closely: tens of milliseconds.
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        self._owner.link_made(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        # Why it ended, for the log: pika's twisted adapter overwrites the
        # broker's Connection.Close reason (say ACCESS_REFUSED or
        # CONNECTION_FORCED) with ConnectionDone and reports a failed open as
        # a bare AMQPConnectionError(1); its pending error still has it here.
        self.close_reason = pending_error(self)
        if self.abort_timer is not None and self.abort_timer.active():
            self.abort_timer.cancel()
        try:
            super().connectionLost(reason)
        finally:
            self._owner.link_lost(self, reason)
            self._lost_waiters.fire(None)


def split_urls(url: str) -> list[str]:
    """The broker URLs of a ``--bus`` value: one, or several separated by commas."""
    return [part.strip() for part in url.split(",") if part.strip()]


class Nodes:
    """The broker nodes of a cluster, in an order of this daemon's own, and the one in use:
    a failed connect or set-up moves on to the next."""

    def __init__(self, url: str, shuffle: Callable[[list[Any]], None] | None = None) -> None:
        self.nodes = [parse_url(one) for one in split_urls(url)]
        if not self.nodes:
            raise ValueError("--bus: no AMQP URL given")
        if shuffle is not None:
            shuffle(self.nodes)
        self.index = 0

    @property
    def params(self) -> Any:
        return self.nodes[self.index][0]

    @property
    def where(self) -> str:
        return f"{self.params.host}:{self.params.port}"

    def failed(self) -> None:
        """The node in use failed: the next attempt goes to the next one."""
        self.index = (self.index + 1) % len(self.nodes)


@implementer(IStreamClientEndpoint)
class NodesEndpoint:
    """An endpoint that connects to the cluster's node in use, and moves on when that
    connect fails (ClientService retries it with its back-off)."""

    def __init__(self, reactor: IReactorTime, nodes: Nodes, timeout: float) -> None:
        self._reactor = reactor
        self._nodes = nodes
        self._timeout = timeout

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        params, tls = self._nodes.nodes[self._nodes.index]
        d: Deferred[IProtocol] = make_endpoint(self._reactor, params, tls,
                                               self._timeout).connect(protocolFactory)

        def failed(failure: Failure) -> Failure:
            self._nodes.failed()
            return failure

        return d.addErrback(failed)


class LinkFactory(Factory):
    """Builds a fresh Link for each connection ClientService makes, for the node in use."""

    noisy = False

    def __init__(self, nodes: Nodes, reactor: IReactorTime, owner: LinkOwner) -> None:
        self._nodes, self._reactor, self._owner = nodes, reactor, owner

    def buildProtocol(self, addr: IAddress | None) -> Link:
        return Link(self._nodes.params, self._reactor, self._owner)


@attrs.define(eq=False)
class Pending:
    """A publish not yet confirmed by the broker; ``done`` fires when it is."""

    chat_uri: str
    seq: int
    payload: bytes
    done: Deferred[None] = attrs.field(factory=Deferred)


class Outbox:
    """Publishes waiting for the link, oldest first, at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("outbox size must be at least 1")
        self.limit = limit
        self.dropped = 0
        self._items: deque[Pending] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: Pending) -> Pending | None:
        """Add an item; return the oldest one if it had to make room."""
        self._items.append(item)
        if len(self._items) > self.limit:
            self.dropped += 1
            return self._items.popleft()
        return None

    def take_all(self) -> list[Pending]:
        """Empty the outbox, returning what was in it, oldest first."""
        items = list(self._items)
        self._items.clear()
        return items
