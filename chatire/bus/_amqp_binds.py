"""Binding many chats at once: batches pipelined over a few channels of one AMQP link."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pika.adapters.twisted_connection import TwistedChannel
from pika.exceptions import ChannelClosedByBroker
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatire._internals.pika import bind_nowait, declare_nowait
from chatire.waiters import Waiters

#: Channels the binds go out on. The broker handles one channel's methods one after
#: another; a few channels let it work on several bindings at once (bench/analysis.md).
CHANNELS = 4
#: Binds sent on a channel before waiting for the broker's answer to the last of them.
BATCH = 200
NOT_FOUND = 404


class BindLink(Protocol):
    """What a Binder needs of the link: channels, the queue, what is bound and declared."""

    queue: str | None
    bound: set[str]
    declared: set[str]

    def channel(self) -> Deferred[TwistedChannel]:
        """Open one more channel on the connection."""


class Binder:
    """Binds the link's queue to chats' exchanges, ``BATCH`` at a time on each of
    ``channels`` channels, with at most one batch in flight a channel.

    An exchange in ``known`` (it existed on the broker before: exchanges are durable,
    they outlive connections and broker restarts) is bound without being declared; a
    batch the broker refuses with NOT_FOUND (its exchange was lost meanwhile) is done
    again, declaring every exchange of it, on a fresh channel. Binds are idempotent.
    ``wanted(uri)`` is asked just before a chat's bind goes out: one no longer wanted is
    skipped. ``idle()`` fires once nothing is queued or in flight; it fails if binding
    failed for good, and ``on_failed(reason)`` is called then: the link is to be dropped
    (a reconnect binds everything again)."""

    log = Logger()

    def __init__(self, link: BindLink, known: set[str], wanted: Callable[[str], bool],
                 exchange: Callable[[str], str], on_failed: Callable[[str], None], *,
                 channels: int = CHANNELS, batch: int = BATCH) -> None:
        self._link = link
        self._known = known
        self._wanted = wanted
        self._exchange = exchange
        self._on_failed = on_failed
        self._width = channels
        self._batch = batch
        self._queue: deque[tuple[str, bool]] = deque()  # (uri, declare first)
        self._channels: list[TwistedChannel] = []
        self._busy = 0  # channels with a batch in flight
        self._idle: Waiters[None] = Waiters()
        self._failed: Failure | None = None
        self.confirmed = 0  # binds the broker has answered, on this link

    async def open(self) -> None:
        """Open the bind channels (before the first ``add``)."""
        for _ in range(self._width):
            self._channels.append(await self._link.channel())

    def add(self, uris: Iterable[str]) -> None:
        """Bind these chats (each counted in ``link.bound`` from now on)."""
        for uri in uris:
            self._link.bound.add(uri)
            self._queue.append((uri, uri not in self._known))
        while self._channels and self._queue and self._failed is None:
            self._send(self._channels.pop())

    def idle(self) -> Deferred[None]:
        """Fires once every bind asked for so far is answered (fails if binding failed)."""
        d = self._idle.wait()
        self._check_idle()
        return d

    def _send(self, chan: TwistedChannel) -> None:
        batch: list[tuple[str, bool]] = []
        while self._queue and len(batch) < self._batch:
            uri, declare = self._queue.popleft()
            if self._wanted(uri):
                batch.append((uri, declare))
            else:
                self._link.bound.discard(uri)
        if not batch:
            self._channels.append(chan)
            self._check_idle()
            return
        self._busy += 1
        queue = self._link.queue
        for uri, declare in batch[:-1]:
            if declare:
                declare_nowait(chan, self._exchange(uri))
            bind_nowait(chan, queue, self._exchange(uri))
        # The last one waits for its answer: the broker handles a channel's methods in
        # order, so the answer says every earlier bind of the batch is done.
        uri, declare = batch[-1]
        if declare:
            declare_nowait(chan, self._exchange(uri))
        answer: Deferred[Any] = chan.queue_bind(queue=queue, exchange=self._exchange(uri))
        answer.addCallbacks(self._done, self._refused, callbackArgs=(chan, batch),
                            errbackArgs=(chan, batch))

    def _done(self, _: object, chan: TwistedChannel, batch: list[tuple[str, bool]]) -> None:
        self._busy -= 1
        uris = [uri for uri, _declare in batch]
        self._known.update(uris)
        self._link.declared.update(uris)
        self.confirmed += len(uris)
        self._next(chan)

    def _refused(self, failure: Failure, chan: TwistedChannel,
                 batch: list[tuple[str, bool]]) -> None:
        self._busy -= 1
        error = failure.value
        retry = (isinstance(error, ChannelClosedByBroker) and error.reply_code == NOT_FOUND
                 and not all(declare for _uri, declare in batch) and self._failed is None)
        if not retry:
            self._fail(failure)
            return
        self.log.info("AMQP bus: {count} chats' exchanges to declare again (one was gone)",
                      count=len(batch))
        for uri, _declare in batch:
            self._known.discard(uri)
        self._queue.extendleft((uri, True) for uri, _declare in reversed(batch))
        Deferred.fromCoroutine(self._reopen()).addErrback(self._reopen_failed)

    async def _reopen(self) -> None:
        chan = await self._link.channel()
        self._next(chan)

    def _reopen_failed(self, failure: Failure) -> None:
        self._fail(failure)

    def _fail(self, failure: Failure) -> None:
        if self._failed is None:
            self._failed = failure
            self._on_failed(f"binding failed: {failure.value!r}")
        self._check_idle()

    def _next(self, chan: TwistedChannel) -> None:
        if self._queue and self._failed is None:
            self._send(chan)
        else:
            self._channels.append(chan)
            self._check_idle()

    def _check_idle(self) -> None:
        if self._failed is not None:
            if self._busy == 0:
                self._idle.fire(self._failed)
            return
        if not self._queue and self._busy == 0:
            self._idle.fire(None)
