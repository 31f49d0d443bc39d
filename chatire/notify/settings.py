"""A user's notification settings (PROTOCOL.md v2): the value, its JSON, and updates to it."""

from __future__ import annotations

from typing import Any

import attrs

#: How much of a chat reaches a member who is away.
LEVELS = ("all", "mentions", "none")
DEFAULT_LEVEL = "mentions"
DEFAULT_DELAY = 60
#: The longest delay a user may choose: a day (notifications are dropped after one).
MAX_DELAY = 86400
MAX_SECRET_CHARS = 256


@attrs.frozen
class Webhook:
    """Where a user's notifications are POSTed, and the key that signs them."""

    url: str
    secret: str | None = None


@attrs.frozen
class NotifySettings:
    """Level, delay and channels of one user; the defaults are a user who set nothing."""

    level: str = DEFAULT_LEVEL
    delay: int = DEFAULT_DELAY
    webhook: Webhook | None = None
    email: str | None = None

    @property
    def reachable(self) -> bool:
        """Whether there is any channel to send to."""
        return self.webhook is not None or self.email is not None

    def to_json(self) -> dict[str, Any]:
        """The settings as the API shows them: the secret never, only whether there is one."""
        hook = None if self.webhook is None else {
            "url": self.webhook.url, "secret": None,
            "has_secret": self.webhook.secret is not None}
        return {"level": self.level, "delay": self.delay, "webhook": hook, "email": self.email}

    def updated(self, body: dict[str, Any]) -> NotifySettings:
        """These settings with the fields a PUT body gives (validated by its schema).

        A webhook without a ``secret`` key keeps the secret it had (a client never
        sees it, so it cannot send it back); ``"secret": null`` removes it.
        """
        changes: dict[str, Any] = {}
        for name in ("level", "delay", "email"):
            if name in body:
                changes[name] = body[name]
        if "webhook" in body:
            hook = body["webhook"]
            if hook is None:
                changes["webhook"] = None
            else:
                kept = self.webhook.secret if self.webhook is not None else None
                changes["webhook"] = Webhook(hook["url"], hook.get("secret", kept) or None)
        return attrs.evolve(self, **changes)
