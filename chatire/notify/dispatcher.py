"""Sends the due notifications: claims rows from the store, delivers, retries, drops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
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

#: Seconds between looks for due notifications (each daemon: one indexed query).
INTERVAL = 1.0
#: Notifications one daemon takes per look (and sends at once).
BATCH = 20
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
    dies with it lets it go when the hold ends. A row is deleted only after every
    channel took it (a 2xx from the webhook, the relay's acceptance); until then it
    is retried with growing delays under the same id, and dropped after a day.
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
        self._loop = LoopingCall(self.tick)
        self._loop.clock = clock
        self._interval = interval
        self._sending: Deferred[Any] | None = None

    def start(self) -> None:
        self._loop.start(self._interval, now=False).addErrback(
            lambda f: log.failure("notification loop stopped", f))

    def stop(self) -> Deferred[Any]:
        """Stop looking; fire once the sends in flight are done (the caller bounds it)."""
        if self._loop.running:
            self._loop.stop()
        return self._sending if self._sending is not None else succeed(None)

    def tick(self) -> Deferred[Any] | None:
        """Look once for due notifications and send them (skipped while a look runs)."""
        if self._sending is not None:
            return None
        self._sending = Deferred.fromCoroutine(self._round())
        self._sending.addErrback(lambda f: log.failure("notification round failed", f))

        def done(result: Any) -> Any:
            self._sending = None
            return result

        return self._sending.addBoth(done)

    async def _round(self) -> None:
        now = self._clock.seconds()
        try:
            claimed = await self._store.claim_due(utc_from_timestamp(now),
                                                  utc_from_timestamp(now + HOLD), BATCH)
        except ChatireError as e:
            log.warn("due notifications not read: {error}", error=str(e))
            return
        if claimed:
            await DeferredList([Deferred.fromCoroutine(self._deliver(c)) for c in claimed],
                               consumeErrors=True)

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            delivery = await self._store.prepare_due(
                claimed.id, self._online(claimed.chat_uri, claimed.user_id), self._compose)
        except ChatireError as e:
            log.warn("notification {id} not prepared: {error}", id=claimed.id, error=str(e))
            return  # it is held; the next claim after the hold tries again
        if delivery is None:
            return
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
        try:
            if not failed:
                await self._store.finish_due(delivery.id)
            elif now - delivery.created_at.timestamp() >= GIVE_UP:
                await self._store.finish_due(delivery.id)
                self._counters.notification_dropped()
                log.warn("notification {id} dropped after a day of failed attempts",
                         id=delivery.nid)
            else:
                at = utc_from_timestamp(now) + timedelta(seconds=retry_delay(delivery.attempts))
                await self._store.retry_due(delivery.id, at, sent)
        except ChatireError as e:
            # The hold ends and it is tried again: at least once, never lost.
            log.warn("notification {id} outcome not kept: {error}", id=delivery.nid,
                     error=str(e))
