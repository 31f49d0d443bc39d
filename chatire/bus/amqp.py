"""IBus on RabbitMQ through pika's Twisted adapter: one connection and one queue per daemon."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from pika.exceptions import (
    AuthenticationError,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, fail
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatire.bus._amqp_binds import Binder
from chatire.bus._amqp_link import (
    Link,
    LinkFactory,
    Nodes,
    NodesEndpoint,
    Outbox,
    Pending,
    exchange_name,
    short_name,
)
from chatire.bus._amqp_receive import consume, deliver
from chatire.interfaces import BusHandler, IBus

#: Connection close codes of a broker that refuses us for good: retrying will not help
#: until the operator changes something (403 ACCESS_REFUSED: user or password; 530
#: NOT_ALLOWED: no such vhost, or no permission on it).
REFUSED_CODES = frozenset({403, 530})


def refused_for_good(error: object) -> bool:
    """Whether a failed connect is the broker's refusal (credentials, vhost), not an outage."""
    if isinstance(error, (ProbableAuthenticationError, ProbableAccessDeniedError,
                          AuthenticationError)):
        return True
    return isinstance(error, ConnectionClosedByBroker) and error.reply_code in REFUSED_CODES


class OutboxOverflowError(Exception):
    """A publish was dropped unsent: the outbox was full while the link was down."""


class BusStoppedError(Exception):
    """A publish was dropped unsent: the bus was stopped before the link came back."""


def _fire(result: None, waiter: Deferred[None]) -> None:
    """Pass on the end of stop() to one more caller."""
    waiter.callback(None)
    return result


@implementer(IBus)
class AMQPBus:
    """IBus on RabbitMQ: a durable fanout exchange per chat, one exclusive queue per daemon."""

    log = Logger()

    def __init__(
        self,
        url: str,
        reactor: IReactorTime,
        *,
        unbind_delay: float = 30.0,
        prefetch: int = 1000,
        outbox_size: int = 10_000,
        retry_policy: Callable[[int], float] | None = None,
        connect_timeout: float = 10.0,
        clock: IReactorTime | None = None,
    ) -> None:
        # Every daemon tries the cluster's nodes in an order of its own, so a cluster's
        # daemons spread over its nodes and all of them do not fail over to the same one.
        self._nodes = Nodes(url, shuffle=random.shuffle)
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor  # for the unbind timers
        self._unbind_delay = unbind_delay
        self._prefetch = prefetch
        self._retry_policy = retry_policy or backoffPolicy(initialDelay=0.5, maxDelay=5.0)
        self._connect_timeout = connect_timeout
        self._outbox = Outbox(outbox_size)
        self._followed: set[str] = set()
        # Chats whose exchange the broker has had: bound again without a declare.
        self._known: set[str] = set()
        self._unbind_timers: dict[str, IDelayedCall] = {}
        self._removed: set[str] = set()  # deleted chats whose exchanges are still to go
        self._link: Link | None = None
        self._service: ClientService | None = None
        self._on_message: BusHandler | None = None
        self._on_reconnect: Callable[[], None] | None = None
        self._setup_failures = 0
        self._closing = False
        self._stop_done: Deferred[None] | None = None
        self.connected = False
        self.nacks = 0  # publishes the broker refused

    @property
    def bound(self) -> int:
        """Binds the broker has answered on the link in use (0 while it is down)."""
        link = self._link
        return link.binder.confirmed if link is not None and link.binder is not None else 0

    @property
    def dropped(self) -> int:
        """Publishes dropped from the full outbox."""
        return self._outbox.dropped

    # -- IBus -----------------------------------------------------------------

    def start(self, on_message: BusHandler, on_reconnect: Callable[[], None]) -> None:
        if self._service is not None:
            raise RuntimeError("AMQPBus.start() called twice")
        self._on_message, self._on_reconnect = on_message, on_reconnect
        factory = LinkFactory(self._nodes, self._reactor, self)
        endpoint = NodesEndpoint(self._reactor, self._nodes, self._connect_timeout)
        self._service = ClientService(
            endpoint, factory, retryPolicy=self._retry_delay, clock=self._reactor
        )
        self._service.startService()

    def stop(self) -> Deferred[None]:
        if self._stop_done is None:
            self._closing = True
            self._stop_done = Deferred.fromCoroutine(self._stop())
            self._stop_done.addErrback(lambda f: self.log.failure("AMQP bus: stop failed", f))
        waiter: Deferred[None] = Deferred()
        self._stop_done.addCallback(_fire, waiter)
        return waiter

    def publish(self, chat_uri: str, seq: int, payload: bytes) -> Deferred[None]:
        try:
            exchange_name(chat_uri)
        except ValueError:
            return fail()
        item = Pending(chat_uri, seq, payload)
        link = self._link
        if link is not None and link.usable:
            link.send(item)
        else:
            self.requeue(item)
        return item.done

    def follow(self, chat_uri: str) -> None:
        exchange_name(chat_uri)  # ValueError early, not a broken channel later
        timer = self._unbind_timers.pop(chat_uri, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._followed.add(chat_uri)
        link = self._link
        if link is not None and link.binder is not None and not link.broken:
            if chat_uri not in link.bound:
                link.binder.add([chat_uri])

    def unfollow(self, chat_uri: str) -> None:
        if chat_uri not in self._followed:
            return
        self._followed.discard(chat_uri)  # deliveries stop now, the binding goes later
        if chat_uri not in self._unbind_timers:
            self._unbind_timers[chat_uri] = self._clock.callLater(
                self._unbind_delay, self._unbind, chat_uri
            )

    def remove(self, chat_uri: str) -> None:
        """The chat was deleted: delete its exchange now, or once the link is back."""
        self._followed.discard(chat_uri)
        timer = self._unbind_timers.pop(chat_uri, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._removed.add(chat_uri)
        self._known.discard(chat_uri)
        self._delete_removed()

    def _delete_removed(self) -> None:
        link = self._link
        if link is None or link.broken or not link.up:
            return
        for uri in sorted(self._removed):
            link.delete_exchange(uri).addErrback(self._log_rpc_failure, "delete", uri)
        self._removed.clear()

    # -- connection life cycle ------------------------------------------------

    def _retry_delay(self, attempt: int) -> float:
        # ClientService counts failed TCP connects only; count failed set-ups too.
        return self._retry_policy(attempt + self._setup_failures)

    def link_made(self, link: Link) -> None:
        if self._closing:
            link.abort()
            return
        self._link = link
        Deferred.fromCoroutine(self._set_up(link)).addErrback(self._set_up_failed, link)

    async def _open(self, link: Link) -> None:
        await link.ready
        channel = await link.channel()
        await channel.confirm_delivery()
        await channel.basic_qos(prefetch_count=self._prefetch)
        frame = await channel.queue_declare(queue="", exclusive=True, auto_delete=True)
        link.chan, link.queue = channel, frame.method.queue
        channel.on_closed.addCallback(self._channel_closed, link)
        binder = Binder(link, self._known, self._followed.__contains__, exchange_name,
                        lambda why: self._link_broken(link, why))
        await binder.open()
        link.binder = binder

    async def _set_up(self, link: Link) -> None:
        # A peer that accepts TCP but never speaks AMQP is cut off here; once
        # open, pika's heartbeats watch the link (binding thousands of chats
        # takes a while, so that part has no deadline).
        opening = Deferred.fromCoroutine(self._open(link))
        await opening.addTimeout(self._connect_timeout, self._reactor)
        assert link.chan is not None
        queue_obj, _tag = await link.chan.basic_consume(queue=link.queue, auto_ack=False)
        link.up = True
        consuming = Deferred.fromCoroutine(self._consume(link, queue_obj))
        consuming.addErrback(lambda f: self.log.failure("AMQP consumer loop failed", f))
        for item in self._outbox.take_all():
            link.send(item)
        self._delete_removed()
        # Binding goes on in the background (publishes, deliveries and new follows
        # meanwhile); the Hub's sweep runs once every chat is bound again, so it
        # heals whatever was posted while a chat was not.
        started = self._reactor.seconds()
        assert link.binder is not None
        link.binder.add(sorted(self._followed - link.bound))
        await link.binder.idle()
        self._setup_failures = 0
        self.connected = True
        self.log.info(
            "AMQP bus up on {where}: queue {queue}, {chats} chats followed (bound in "
            "{seconds:.1f} s)", where=self._nodes.where, queue=link.queue,
            chats=len(link.bound), seconds=self._reactor.seconds() - started,
        )
        if self._on_reconnect is not None:
            try:
                self._on_reconnect()
            except Exception:
                self.log.failure("AMQP bus: on_reconnect failed")

    def _set_up_failed(self, failure: Failure, link: Link) -> None:
        if self._closing:
            return
        self._setup_failures += 1  # (the back-off grows until a set-up is done, binds too)
        if link.up and (link.lost or link.broken):
            return  # lost or broken while binding: link_lost or _link_broken logged it
        where = self._nodes.where
        self._nodes.failed()  # the next attempt goes to the next node
        if failure.check(DeferredTimeoutError):
            reason = "timed out"
        else:
            reason = repr(link.close_reason or failure.value)
        # The daemon retries even a refusal (the operator may fix the broker's side);
        # `refused` lets `chatire check` fail at once instead of waiting it out.
        self.log.warn(
            "AMQP bus: setting up the link to {where} failed ({reason}); will retry on "
            "{next}", where=where, next=self._nodes.where, reason=reason,
            failures=self._setup_failures,
            refused=refused_for_good(link.close_reason or failure.value),
        )
        self._break(link)

    def link_lost(self, link: Link, reason: Failure) -> None:
        if link is self._link:
            self._link = None
            self.connected = False
        if not link.up or link.broken or self._closing:
            return  # already logged, or the set-up failure will be
        where = self._nodes.where
        # A node that drops a working link is often on its way down (a broker stops by
        # closing its connections first): the next attempt goes to the next node.
        self._nodes.failed()
        self.log.warn(
            "AMQP bus: link to {where} lost ({reason}); reconnecting to {next}",
            where=where, next=self._nodes.where,
            reason=repr(link.close_reason or reason.value), queue=link.queue,
        )

    def _channel_closed(self, reason: object, link: Link) -> None:
        self._link_broken(link, f"channel closed: {reason}")

    def _link_broken(self, link: Link, why: str) -> None:
        """The channel or consumer is gone: drop the connection, ClientService reconnects."""
        if not link.up or link.broken or link.lost or self._closing:
            return
        self.log.warn(
            "AMQP bus: link to {where} broken ({why}); reconnecting",
            where=self._nodes.where, why=why, queue=link.queue,
        )
        self._break(link)

    def _break(self, link: Link) -> None:
        if link is self._link:
            self.connected = False
        link.broken = True
        if link.lost:
            return
        if link.is_open:
            link.close()
            # A broker that does not answer the close gets the door shut on it.
            link.abort_timer = self._reactor.callLater(self._connect_timeout, link.abort)
        else:
            link.abort()

    async def _stop(self) -> None:
        self.connected = False
        for timer in self._unbind_timers.values():
            if timer.active():
                timer.cancel()
        self._unbind_timers.clear()
        link = self._link
        if link is not None and not link.lost:
            lost = link.when_lost()
            if link.is_open:
                link.close()
            else:
                link.abort()
            try:
                await lost.addTimeout(self._connect_timeout, self._reactor)
            except DeferredTimeoutError:
                link.abort()
        if self._service is not None:
            await self._service.stopService()
        for item in self._outbox.take_all():
            item.done.errback(BusStoppedError("bus stopped before the publish was sent"))

    # -- receiving (chatire.bus._amqp_receive) -------------------------------

    async def _consume(self, link: Link, queue_obj: Any) -> None:
        channel = link.chan
        await consume(
            queue_obj,
            lambda message: deliver(channel, message, self._followed, self._on_message, self.log),
            lambda why: self._link_broken(link, why),
        )

    # -- publishing and binding -----------------------------------------------

    def requeue(self, item: Pending) -> None:
        """Keep a publish for the next link (LinkOwner); make room by dropping the oldest."""
        dropped = self._outbox.push(item)
        if dropped is None:
            return
        if self._outbox.dropped == 1 or self._outbox.dropped % 1000 == 0:
            self.log.warn(
                "AMQP bus: outbox full ({limit}), dropped the oldest publish ({count} so far)",
                limit=self._outbox.limit, count=self._outbox.dropped,
                chat=short_name(dropped.chat_uri), seq=dropped.seq,
            )
        dropped.done.errback(OutboxOverflowError(f"outbox full, dropped seq {dropped.seq}"))

    def nacked(self, failure: Failure, item: Pending) -> None:
        """The broker refused a publish (LinkOwner): count, log, fail it."""
        self.nacks += 1
        self.log.warn(
            "AMQP bus: broker refused a publish ({count} so far)",
            count=self.nacks, chat=short_name(item.chat_uri), seq=item.seq,
        )
        item.done.errback(failure)

    def _unbind(self, uri: str) -> None:
        self._unbind_timers.pop(uri, None)
        link = self._link
        if uri in self._followed or link is None or link.broken or uri not in link.bound:
            return
        link.unbind(uri).addErrback(self._log_rpc_failure, "unbind", uri)

    def _log_rpc_failure(self, failure: Failure, what: str, uri: str) -> None:
        self.log.warn(
            "AMQP bus: {what} for a chat failed ({reason})",
            what=what, reason=failure.getErrorMessage(), chat=short_name(uri),
        )
