"""The notification settings a user reads and changes, per chat too, and the test send."""

from __future__ import annotations

import json
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

from chatire.chats import ChatService
from chatire.errors import Conflict, Invalid, RateLimited
from chatire.interfaces import INotifyStore
from chatire.model import User
from chatire.notify.dispatcher import EMAIL, WEBHOOK, MailSender, WebhookSender
from chatire.notify.errors import DeliveryFailed
from chatire.notify.mail import email_problem
from chatire.notify.planner import new_id
from chatire.notify.settings import LEVELS, NotifySettings
from chatire.notify.webhook import webhook_url_problem
from chatire.ratelimit import TokenBucket

#: Test sends a user may ask for: one every ten seconds, three at once.
TEST_RATE, TEST_BURST = 0.1, 3


class Preferences:
    """Reads and changes settings (telling every daemon to read rosters again), and sends
    a test notification through the user's channels at once."""

    def __init__(self, chats: ChatService, store: INotifyStore, clock: IReactorTime, *,
                 public_url: Callable[[], str], changed: Callable[[], None],
                 webhooks: WebhookSender | None, mail: MailSender | None) -> None:
        self._chats = chats
        self._store = store
        self._public_url = public_url
        self._changed = changed
        self._webhooks = webhooks
        self._mail = mail
        self._tests = TokenBucket(clock, TEST_RATE, TEST_BURST)

    @property
    def email_enabled(self) -> bool:
        """Whether the daemon has a relay (``--smtp``): without one, no e-mail address."""
        return self._mail is not None

    async def get(self, user: User) -> NotifySettings:
        settings: NotifySettings = await self._store.notify_settings(user.id)
        return settings

    async def put(self, user: User, body: dict[str, object]) -> NotifySettings:
        """Change the fields the body gives; 400 for a URL that is not http(s) and for an
        address when there is no relay."""
        hook = body.get("webhook")
        if isinstance(hook, dict):
            problem = webhook_url_problem(str(hook.get("url", "")))
            if problem is not None:
                raise Invalid(f"webhook.url: {problem}")
        email = body.get("email")
        if email is not None:
            if not self.email_enabled:
                raise Invalid("email: this server has no mail relay; use a webhook")
            problem = email_problem(str(email))
            if problem is not None:
                raise Invalid(f"email: {problem}")
        settings = (await self.get(user)).updated(body)
        await self._store.save_notify_settings(user.id, settings)
        self._changed()
        return settings

    async def chat_level(self, user: User, uri: str) -> str | None:
        chat = await self._chats.member_chat(user, uri)
        _, level = await self._store.chat_level(chat.id, user.id)
        return level

    async def set_chat_level(self, user: User, uri: str, level: str | None) -> str | None:
        if level is not None and level not in LEVELS:
            raise Invalid(f"level: one of {', '.join(LEVELS)}, or null")
        chat = await self._chats.member_chat(user, uri)
        await self._store.set_chat_level(chat.id, user.id, level)
        self._changed()
        return level

    async def test(self, user: User) -> dict[str, str]:
        """Send a test notification through each channel now; what each answered."""
        settings = await self.get(user)
        if not settings.reachable:
            raise Conflict("nothing to test: set a webhook URL or an e-mail address first")
        wait = self._tests.take(user.id)
        if wait:
            raise RateLimited("a test was sent just now; wait a moment", retry_after=wait)
        nid = new_id()
        text = "A test notification from chatire: your settings work."
        body = json.dumps({
            "type": "chatire.notification", "id": nid, "test": True, "user": user.to_json(),
            "chat": {"uri": "", "title": "chatire", "url": self._public_url()},
            "messages": [], "more": 0, "text": text}, separators=(",", ":"))
        results: dict[str, str] = {}
        if settings.webhook is not None and self._webhooks is not None:
            try:
                status = await self._webhooks.post(settings.webhook.url, body.encode(),
                                                   settings.webhook.secret, notification_id=nid)
                results[WEBHOOK] = f"delivered ({status})"
            except DeliveryFailed as e:
                results[WEBHOOK] = f"failed: {e.reason}"
        if settings.email is not None and self._mail is not None:
            try:
                await self._mail.send(settings.email, "chatire: test notification",
                                      f"{text}\n\n{self._public_url()}",
                                      nid)
                results[EMAIL] = "delivered"
            except DeliveryFailed as e:
                results[EMAIL] = f"failed: {e.reason}"
        return results
