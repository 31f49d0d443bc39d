"""The notification parts of one daemon, built from its Config and started and stopped with it."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred

from chatire.chats import ChatService
from chatire.config import Config
from chatire.control import NodeControl
from chatire.interfaces import INotifyStore
from chatire.notify.dispatcher import Counters, Dispatcher
from chatire.notify.mail import MailClient, parse_smtp_url
from chatire.notify.payload import composer
from chatire.notify.planner import Planner
from chatire.notify.preferences import Preferences
from chatire.notify.webhook import WebhookClient
from chatire.presence import Presence

#: The control event that makes every daemon read its rosters again.
ROSTERS = "rosters"


@attrs.define(eq=False)
class PublicURL:
    """The base of links the daemon hands out: --public-url, else the first listener."""

    configured: str = ""
    learned: str = "http://localhost"

    def __call__(self) -> str:
        return (self.configured or self.learned).rstrip("/")

    def learn(self, host: Any, secure: bool = False) -> None:
        """The first listener's address, once it listens (IPv4/IPv6 address objects)."""
        address = getattr(host, "host", "localhost")
        if ":" in address:
            address = f"[{address}]"
        scheme = "https" if secure else "http"
        self.learned = f"{scheme}://{address}:{getattr(host, 'port', 80)}"


@attrs.define(eq=False)
class Notifications:
    """Planner (at commit), dispatcher (the due rows) and preferences (the API's side)."""

    planner: Planner
    dispatcher: Dispatcher
    preferences: Preferences

    def start(self) -> None:
        self.dispatcher.start()

    def stop(self) -> Deferred[Any]:
        return self.dispatcher.stop()


def build_notifications(config: Config, reactor: Any, store: INotifyStore, planner: Planner,
                        chats: ChatService, control: NodeControl, presence: Presence,
                        counters: Counters, public_url: PublicURL) -> Notifications:
    """Every notification part of a daemon, over its store, control channel and presence."""
    webhooks = WebhookClient(reactor, allow_private=config.webhook_allow_private)
    mail = None
    if config.smtp:
        relay = parse_smtp_url(config.smtp)
        mail = MailClient(reactor, relay, config.mail_from or f"chatire@{relay.host}")

    control.handle(ROSTERS, lambda event: planner.forget_rosters())
    dispatcher = Dispatcher(store, reactor, composer(public_url), online=presence.is_online,
                            counters=counters, webhooks=webhooks, mail=mail)
    preferences = Preferences(chats, store, reactor, public_url=public_url,
                              changed=lambda: control.announce({"kind": ROSTERS}),
                              webhooks=webhooks, mail=mail)
    return Notifications(planner, dispatcher, preferences)
