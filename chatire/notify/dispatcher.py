"""Sends the due notifications: claims rows from the store, delivers, retries, drops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatire.errors import ChatireError
from chatire.interfaces import INotifyStore
from chatire.model import utc_from_timestamp
from chatire.notify import payload as compose
from chatire.notify.due import Claimed, Delivery
from chatire.notify.errors import DeliveryFailed
from chatire.notify.payload import Compose

log = Logger()

#: Seconds between looks for due notifications (each daemon: one indexed query when
#: nothing is due).
INTERVAL = 0.5
#: Notifications one claim takes; a look claims again while claims come back full.
BATCH = 100
#: Deliveries one daemon has in flight at most: past it, the rest wait for the next look
#: (a slow receiver holds one slot for its timeout, not anyone else's turn).
MAX_IN_FLIGHT = 200
#: Seconds a delivered notification's row may wait to be deleted with others in one
#: statement (the finish of BATCH rows waits for none).
FINISH_EVERY = 0.005
#: Seconds a claimed notification is held: longer than any attempt takes, so no other
#: daemon sends it meanwhile; a daemon that dies holding it lets it go then.
HOLD = 120.0
#: Seconds after its first due time a notification is given up on.
GIVE_UP = 24 * 3600.0
#: Seconds before the first retry, then three times longer each time, at most an hour.
FIRST_RETRY = 10.0
MAX_RETRY = 3600.0

WEBHOOK, EMAIL = "webhook", "email"


class WebhookSender(Protocol):
    """POSTs a body to a URL (chatire.notify.webhook.WebhookClient)."""

    async def post(self, url: str, body: bytes, secret: str | None, *,
                   notification_id: str) -> int: ...


class MailSender(Protocol):
    """Hands a mail to the relay (chatire.notify.mail.MailClient)."""

    async def send(self, to: str, subject: str, text: str, message_id: str) -> None: ...


class Counters(Protocol):
    """What the dispatcher counts (chatire.metrics.Metrics)."""

    def notification_sent(self, channel: str) -> None: ...

    def notification_failed(self, channel: str) -> None: ...

    def notification_dropped(self) -> None: ...


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 10, 30, 90, ... 3600."""
    return min(MAX_RETRY, FIRST_RETRY * 3.0 ** min(attempts, 10))


class Dispatcher:
    """Each daemon looks for due notifications every INTERVAL and sends the ones it took.

    The rows are the durable queue: a claim moves a row's due time HOLD ahead in
    the same statement that finds it (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the
    single writer on SQLite), so two daemons never take the same one, and one that
    dies with it lets it go when the hold ends. The rows of one claim are prepared in
    one transaction. A row is deleted only after every channel took it (a 2xx from
    the webhook, the relay's acceptance), with the others delivered within
    FINISH_EVERY, in one statement; until then it is retried with growing delays
    under the same id, and dropped after a day.
    """

    def __init__(self, store: INotifyStore, clock: IReactorTime, compose: Compose, *,
                 online: Any, counters: Counters, webhooks: WebhookSender | None,
                 mail: MailSender | None, interval: float = INTERVAL) -> None:
        self._store = store
        self._clock = clock
        self._compose = compose
        self._online = online  # (chat uri, user id) -> bool
        self._counters = counters
        self._webhooks = webhooks
        self._mail = mail
        self._loop = LoopingCall(self._look)
        self._loop.clock = clock
        self._interval = interval
        self._in_flight: set[Deferred[None]] = set()
        self._holding = 0  # rows claimed and not yet settled
        self._finished: list[int] = []  # delivered, their rows not yet deleted
        self._flush_call: IDelayedCall | None = None
        self._looking = False  # a look is claiming
        self._starved = False  # the last look stopped for want of room

    def start(self) -> None:
        self._loop.start(self._interval, now=False).addErrback(
            lambda f: log.failure("notification loop stopped", f))

    def stop(self) -> Deferred[Any]:
        """Stop looking; fire once the deliveries in flight are done and their rows
        deleted (the caller bounds it)."""
        if self._loop.running:
            self._loop.stop()

        async def drain() -> None:
            await DeferredList(list(self._in_flight), consumeErrors=True)
            await self._flush()

        return Deferred.fromCoroutine(drain())

    def tick(self) -> Deferred[None]:
        """One look, then the deliveries it started and their finish (how tests drive
        the dispatcher)."""

        async def once() -> None:
            started = await self._look()
            await DeferredList(started, consumeErrors=True)
            await self._flush()

        return Deferred.fromCoroutine(once())

    def _look(self) -> Deferred[list[Deferred[None]]]:
        """Claim what is due while there is room, each claim prepared and sent while the
        next is claimed; fires when claiming stops (the loop's next look waits for that,
        never for a send)."""
        return Deferred.fromCoroutine(self._claim_while_room())

    async def _claim_while_room(self) -> list[Deferred[None]]:
        started: list[Deferred[None]] = []
        if self._looking:
            return started  # the look that room woke is still claiming
        self._looking = True
        try:
            while True:
                room = min(BATCH, MAX_IN_FLIGHT - self._holding)
                if room <= 0:
                    # A slow receiver holds a slot, never the others' turn; the next
                    # look comes when room is made (_wake) or at the interval.
                    self._starved = True
                    return started
                now = self._clock.seconds()
                try:
                    claimed = await self._store.claim_due(
                        utc_from_timestamp(now), utc_from_timestamp(now + HOLD), room)
                except ChatireError as e:
                    log.warn("due notifications not read: {error}", error=str(e))
                    return started
                if claimed:
                    self._holding += len(claimed)
                    d = Deferred.fromCoroutine(self._send(claimed))
                    self._in_flight.add(d)
                    d.addErrback(lambda f: log.failure("notification delivery failed", f))
                    d.addBoth(self._landed, d)
                    started.append(d)
                if len(claimed) < room:
                    self._starved = False
                    return started
        finally:
            self._looking = False

    def _landed(self, result: Any, d: Deferred[None]) -> None:
        self._in_flight.discard(d)

    def _release(self, rows: int) -> None:
        """Rows settled: their room is free, and a look that stopped for want of it goes on."""
        self._holding -= rows
        if (self._starved and not self._looking and self._loop.running
                and MAX_IN_FLIGHT - self._holding >= BATCH):
            self._starved = False
            self._look().addErrback(lambda f: log.failure("notification look failed", f))

    async def _send(self, claimed: list[Claimed]) -> None:
        """Prepare one claim's rows together, then deliver each (the rows nothing is due
        for any more are left out, and their room is freed at once)."""
        deliveries = await self._prepare(claimed)
        self._release(len(claimed) - len(deliveries))
        await DeferredList([Deferred.fromCoroutine(self._deliver(one)) for one in deliveries],
                           consumeErrors=True)

    async def _prepare(self, claimed: list[Claimed]) -> list[Delivery]:
        """The deliveries of one claim, in one transaction (none if it failed: the rows
        are held, and the first claim after the hold tries them again)."""
        claims = [(one.id, bool(self._online(one.chat_uri, one.user_id))) for one in claimed]
        try:
            return await self._store.prepare_due(claims, self._compose)
        except ChatireError as e:
            log.warn("{count} notifications not prepared: {error}", count=len(claims),
                     error=str(e))
            return []
        except Exception:  # a bug must not stop the loop: the rows wait for their hold
            log.failure("{count} notifications not prepared", count=len(claims))
            return []

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            await self._attempt(delivery)
        except Exception:
            log.failure("notification {id} delivery failed", id=delivery.nid)
        finally:
            self._release(1)

    async def _attempt(self, delivery: Delivery) -> None:
        sent = set(delivery.sent)
        failed: list[str] = []
        for channel, attempt in self._attempts(delivery):
            if channel in sent:
                continue
            try:
                await attempt()
            except DeliveryFailed as e:
                failed.append(channel)
                self._counters.notification_failed(channel)
                log.info("notification {id} not delivered by {channel}: {reason}",
                         id=delivery.nid, channel=channel, reason=e.reason)
                continue
            except Exception:
                failed.append(channel)
                self._counters.notification_failed(channel)
                log.failure("notification {id} by {channel}", id=delivery.nid, channel=channel)
                continue
            sent.add(channel)
            self._counters.notification_sent(channel)
        await self._settle(delivery, failed, frozenset(sent))

    def _attempts(self, delivery: Delivery) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
        """The channels to try, each as a call that starts its attempt."""
        attempts: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        hook, webhooks, mail = delivery.webhook, self._webhooks, self._mail
        if hook is not None and webhooks is not None:
            attempts.append((WEBHOOK, partial(webhooks.post, hook.url, delivery.payload.encode(),
                                              hook.secret, notification_id=delivery.nid)))
        if delivery.email is not None and mail is not None:
            subject, text = compose.mail(delivery.payload)
            attempts.append((EMAIL, partial(mail.send, delivery.email, subject, text,
                                            delivery.nid)))
        return attempts

    async def _settle(self, delivery: Delivery, failed: list[str],
                      sent: frozenset[str]) -> None:
        now = self._clock.seconds()
        if failed and now - delivery.created_at.timestamp() >= GIVE_UP:
            self._counters.notification_dropped()
            log.warn("notification {id} dropped after a day of failed attempts",
                     id=delivery.nid)
        elif failed:
            at = utc_from_timestamp(now) + timedelta(seconds=retry_delay(delivery.attempts))
            try:
                await self._store.retry_due(delivery.id, at, sent)
            except ChatireError as e:
                # The hold ends and it is tried again: at least once, never lost.
                log.warn("notification {id} outcome not kept: {error}", id=delivery.nid,
                         error=str(e))
            return
        self._finished.append(delivery.id)
        if len(self._finished) >= BATCH:
            self._flush_now()
        elif self._flush_call is None:
            self._flush_call = self._clock.callLater(FINISH_EVERY, self._flush_now)

    def _flush_now(self) -> None:
        d = Deferred.fromCoroutine(self._flush())
        self._in_flight.add(d)
        d.addErrback(lambda f: log.failure("delivered notifications not deleted", f))
        d.addBoth(lambda _: self._in_flight.discard(d))

    async def _flush(self) -> None:
        """Delete the rows delivered since the last flush, in one statement."""
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        ids, self._finished = self._finished, []
        if not ids:
            return
        try:
            await self._store.finish_due(ids)
        except ChatireError as e:
            # Their holds end and they are sent again: at least once, never lost.
            log.warn("{count} delivered notifications not deleted: {error}",
                     count=len(ids), error=str(e))
