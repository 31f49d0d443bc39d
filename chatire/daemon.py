"""The composition root: the whole daemon built from a Config, in order, for every caller."""

from __future__ import annotations

from typing import Any, cast

from twisted.application.internet import TimerService
from twisted.python.filepath import FilePath

from chatire import collector
from chatire.api import ChatireAPI
from chatire.auth import HashQueue, Passwords
from chatire.bus import bus_from_url
from chatire.chats import ChatEvents, ChatService
from chatire.clientaddr import trusted_networks
from chatire.config import Config
from chatire.delivery import Hub
from chatire.drain import Drain
from chatire.health import LiveResource, Readiness, ReadyResource
from chatire.interfaces import IBus
from chatire.logs import (
    AccessLoggedSocket,
    AccessLogSite,
    LogDestination,
    QuietSite,
    RootService,
)
from chatire.metrics import (
    MeteredBus,
    MeteredEngine,
    MeteredEvents,
    Metrics,
    MetricsOnly,
    MetricsResource,
)
from chatire.moderation import Moderation
from chatire.notify.planner import Planner
from chatire.notify.service import PublicURL, build_notifications
from chatire.service import ChatireService, default_web_root
from chatire.site import make_site
from chatire.store import store_from_url
from chatire.store.sqlstore import SQLStore
from chatire.timeline import TimelineService
from chatire.ws import ChatSocket, ChatSocketFactory, prepare

#: Seconds between checks whether many sockets closed (chatire.collector.Trimmer).
TRIM_INTERVAL = 2.0
#: The names of the services under the root (twistd and the .tac run the same ones).
DAEMON, TRIMMER = "chatire", "trimmer"


def open_store(config: Config, reactor: Any, metrics: Metrics | None = None) -> SQLStore:
    """The store of ``--db`` (not started); its transactions timed into ``metrics`` if given."""
    store = store_from_url(config.db, reactor, connect_timeout=config.db_connect_timeout)
    if metrics is None:
        return store
    return SQLStore(MeteredEngine(store.engine, metrics))


def chat_service(config: Config, store: SQLStore, reactor: Any,
                 events: ChatEvents | None = None) -> ChatService:
    """The chat rules over a store, hashing passwords on the daemon's queue."""
    return ChatService(store, config, reactor, Passwords(HashQueue(reactor)), events)


def build(config: Config, reactor: Any, *, bus: IBus | None = None,
          logs: LogDestination | None = None) -> RootService:
    """The whole daemon: the root service, the daemon service (named DAEMON) and the
    memory trimmer (named TRIMMER), for `twistd chatire`, chatire.tac and the tests.

    ``logs`` given (twistd's or the .tac's log options), the daemon owns the process:
    its log file, SIGHUP/SIGUSR1 and the garbage collector's settings (set once it
    is up). None (a daemon inside another program, as in the tests): none of these.
    """
    top = RootService(config.log_format, destination=logs,
                      reactor=reactor if logs is not None else None)
    service = _daemon(config, reactor, bus)
    service.setName(DAEMON)
    service.setServiceParent(top)
    if logs is not None:
        service.ready.addCallback(lambda _: collector.settle())
    trimmer = collector.Trimmer(lambda: service.sockets.open_count)
    timer = TimerService(TRIM_INTERVAL, trimmer.check)
    timer.setName(TRIMMER)
    timer.setServiceParent(top)
    return top


def daemon_of(top: RootService) -> ChatireService:
    """The daemon service of a tree that build() made."""
    return cast(ChatireService, top.getServiceNamed(DAEMON))


def _daemon(config: Config, reactor: Any, bus: IBus | None) -> ChatireService:
    """Every part, each built once its own parts exist: nothing is set afterwards."""
    metrics = Metrics(reactor)
    store = open_store(config, reactor, metrics)
    bus = bus if bus is not None else bus_from_url(config.bus, reactor)
    publishing = MeteredBus(bus, metrics)
    hub = Hub(store, publishing, reactor, lambda payload: metrics.stamp(prepare(payload), payload),
              max_subscriptions=config.max_subscriptions, typing_interval=config.typing_interval,
              presence_grace=config.presence_grace)
    planner = Planner(store, reactor)
    chats = chat_service(config, store, reactor,
                         MeteredEvents(hub, metrics, also=planner.message_committed))
    public_url = PublicURL(config.public_url)
    notifications = build_notifications(config, reactor, store, planner, chats, hub.control,
                                        hub.presence, metrics, public_url)
    timeline = TimelineService(chats, store, reactor)
    # Counted into this daemon's metrics, and in the access log when it closes.
    socket_class = cast(type[ChatSocket], type(
        "ChatSocket", (AccessLoggedSocket, ChatSocket), {}))
    sockets = ChatSocketFactory(chats, hub, config, reactor, protocol=socket_class,
                                meter=metrics, timeline=timeline)
    metrics.watch(sockets=lambda: sockets.open_count,
                  subscriptions=hub.subscription_count,
                  gap_fills=lambda: hub.gap_fills,
                  control_published=lambda: hub.control.outbox.events,
                  control_messages=lambda: hub.control.outbox.messages,
                  bus_connected=lambda: 1.0 if bus.connected else 0.0)
    readiness = Readiness(store, bus, reactor)
    web_root = FilePath(config.web_root) if config.web_root else default_web_root()
    api = ChatireAPI(chats, readiness, web_root, websocket=_websocket_resource(sockets),
                     max_body_bytes=config.max_body_bytes,
                     trusted_proxies=trusted_networks(config.trusted_proxy),
                     timeline=timeline, moderation=Moderation(chats, store),
                     presence=hub.presence, notifications=notifications.preferences,
                     public_url=config.public_url)
    drain = Drain()
    site = make_site(drain.wrap(api.resource()), config.max_body_bytes,
                     site_class=AccessLogSite, request_timeout=config.request_timeout,
                     timeout=config.http_timeout or None)
    # /metrics is served only on --metrics-listen (off by default), never on the
    # public port: message and socket counts are for the operator. That port also
    # answers /livez and /healthz (for a probe that must not go through the public
    # port), with no access log.
    metrics_site = QuietSite(MetricsOnly(MetricsResource(metrics), livez=LiveResource(),
                                         healthz=ReadyResource(readiness)))
    return ChatireService(config=config, reactor=reactor, metrics=metrics, store=store, bus=bus,
                          publishing=publishing, hub=hub, chats=chats, sockets=sockets,
                          api=api, drain=drain, site=site, metrics_site=metrics_site,
                          notifications=notifications, public_url=public_url)


def _websocket_resource(factory: ChatSocketFactory) -> Any:
    from autobahn.twisted.resource import WebSocketResource

    return WebSocketResource(factory)
