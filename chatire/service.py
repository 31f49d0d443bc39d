"""The daemon as one Twisted service: start the store, the bus, then listen; stop gracefully."""

from __future__ import annotations

import sys
from typing import Any, cast

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from chatire.api import ChatireAPI
from chatire.auth import HashQueue, Passwords
from chatire.bus import bus_from_url
from chatire.chats import ChatService
from chatire.clientaddr import trusted_networks
from chatire.config import Config
from chatire.delivery import Hub
from chatire.drain import Drain
from chatire.health import LiveResource, Readiness, ReadyResource
from chatire.interfaces import IBus
from chatire.logs import AccessLoggedSocket, AccessLogSite, QuietSite, quiet_accept_errors
from chatire.metrics import (
    MeteredBus,
    MeteredEngine,
    MeteredEvents,
    Metrics,
    MetricsOnly,
    MetricsResource,
)
from chatire.site import make_site
from chatire.store import store_from_url
from chatire.ws import CLOSE_GOING_AWAY, ChatSocket, ChatSocketFactory

log = Logger()


def default_web_root() -> FilePath[str]:
    """The browser UI: ``web/`` beside the package (source tree or installed share)."""
    here = FilePath(__file__).parent()
    for candidate in (here.sibling("web"), here.child("web")):
        if candidate.child("index.html").exists():
            return candidate
    return here.sibling("web")


class ChatireService(Service):
    """Store, bus, Hub, API and WebSocket wired together, started and stopped in order."""

    def __init__(self, config: Config, reactor: Any, *, bus: IBus | None = None) -> None:
        self.config = config
        self.reactor = reactor
        self.metrics = Metrics(reactor)
        self.store = store_from_url(config.db, reactor)
        self.store.engine = MeteredEngine(self.store.engine, self.metrics)
        self.bus = bus if bus is not None else bus_from_url(config.bus, reactor)
        self.chats = ChatService(self.store, config, reactor, Passwords(HashQueue(reactor)))
        # Counted into this daemon's metrics, and in the access log when it closes.
        self.sockets = ChatSocketFactory(self.chats, None, config, reactor, meter=self.metrics)
        self.sockets.protocol = cast(type[ChatSocket], type(
            "ChatSocket", (AccessLoggedSocket, ChatSocket), {}))
        self.publishing = MeteredBus(self.bus, self.metrics)
        self.hub = Hub(self.chats, self.publishing, reactor, self._prepare,
                       max_subscriptions=config.max_subscriptions,
                       typing_interval=config.typing_interval)
        self.sockets.hub = self.hub
        self.chats.events = MeteredEvents(self.hub, self.metrics)
        self.metrics.watch(sockets=lambda: self.sockets.open_count,
                           subscriptions=self.hub.subscription_count,
                           gap_fills=lambda: self.hub.gap_fills,
                           bus_connected=lambda: 1.0 if self.bus.connected else 0.0)
        web_root = FilePath(config.web_root) if config.web_root else default_web_root()
        self.api = ChatireAPI(self.chats, self.bus, reactor, web_root,
                              websocket=_websocket_resource(self.sockets),
                              max_body_bytes=config.max_body_bytes,
                              trusted_proxies=trusted_networks(config.trusted_proxy))
        # /metrics is served only on --metrics-listen (off by default), never on the
        # public port: message and socket counts are for the operator.
        self.drain = Drain()
        self.site = make_site(self.drain.wrap(self.api.resource()), config.max_body_bytes,
                              site_class=AccessLogSite, request_timeout=config.request_timeout,
                              timeout=config.http_timeout or None)
        # The operator's port: /metrics, /livez and /healthz (for a probe that must not
        # go through the public port), with no access log.
        readiness = Readiness(self.store, self.bus, reactor, self.api.health_timeout)
        self.metrics_site = QuietSite(MetricsOnly(
            MetricsResource(self.metrics), livez=LiveResource(),
            healthz=ReadyResource(readiness)))
        self.ports: list[IListeningPort] = []
        self.ready: Deferred[None] = Deferred()

    def startService(self) -> None:
        super().startService()
        Deferred.fromCoroutine(self._start()).addCallbacks(self.ready.callback, self._fatal)

    async def _start(self) -> None:
        await self.store.start()
        self.sockets.startFactory()
        self.hub.start()
        for description in self.config.listen:
            port = await serverFromString(self.reactor, description).listen(self.site)
            quiet_accept_errors(port, self.reactor)
            self.ports.append(port)
            address = port.getHost()
            log.info("chatire listening on {description} ({address})",
                     description=description, address=address)
        for description in self.config.metrics_listen:
            port = await serverFromString(self.reactor, description).listen(self.metrics_site)
            self.ports.append(port)
            log.info("chatire serving /metrics on {description} ({address})",
                     description=description, address=port.getHost())

    def _prepare(self, payload: bytes) -> Any:
        return self.metrics.stamp(self.sockets.prepare(payload), payload)

    def _fatal(self, failure: Failure) -> None:
        log.critical("chatire could not start: {error}", error=str(failure.value))
        sys.stderr.write(f"chatire: could not start: {failure.value}\n")
        self.ready.errback(failure)
        self.reactor.addSystemEventTrigger("after", "shutdown", _exit_failed)
        self.reactor.stop()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        """Graceful stop within --shutdown-timeout: no new connections, posts in flight
        committed and confirmed, every socket closed with 1001, then the bus and the store."""
        clock = self.reactor
        deadline = clock.seconds() + self.config.shutdown_timeout

        def left() -> float:
            return max(0.0, deadline - clock.seconds())

        await DeferredList([Deferred.fromCoroutine(_stop_port(p)) for p in self.ports])
        self.ports.clear()
        # HTTP requests that arrive on connections still open get 503 and
        # Connection: close; the ones in flight are answered before the store closes.
        self.drain.close()
        # From now on a post is refused ('unavailable', HTTP 503); the ones taken
        # already are committed and confirmed first.
        drained = self.chats.stop_posting()
        if not await _within(drained, self.config.shutdown_timeout / 2, clock):
            log.warn("chatire stopping: posts still being stored at the deadline")
        self.sockets.close_all(CLOSE_GOING_AWAY, "server shutting down")
        await self._sockets_closed(min(left(), 3.0))
        # Let the broker confirm what was just committed, so other daemons get it live.
        if not await _within(self.publishing.settled(), min(left(), 2.0), clock):
            log.warn("chatire stopping: {count} bus publishes unconfirmed at the deadline",
                     count=self.publishing.in_flight)
        if not await _within(self.drain.idle(), left(), clock):
            log.warn("chatire stopping: {count} HTTP requests unanswered at the deadline",
                     count=self.drain.in_flight)
        self.drain.close_connections()
        try:
            if not await _within(self.hub.stop(), left(), clock):
                log.warn("chatire stopping: the bus did not close in time")
        finally:
            self.sockets.stopFactory()
            await self.store.stop()
        log.info("chatire stopped")

    async def _sockets_closed(self, timeout: float) -> None:
        """Give the close handshakes a moment, so the 1001 frames reach the clients."""
        waited = 0.0
        while self.sockets.open_count > 0 and waited < timeout:
            await deferLater(self.reactor, 0.02, lambda: None)
            waited += 0.02


async def _within(d: Deferred[Any], timeout: float, clock: Any) -> bool:
    """Wait for ``d`` at most ``timeout`` seconds; whether it fired in time."""
    try:
        await d.addTimeout(timeout, clock)
    except DeferredTimeoutError:
        return False
    return True


async def _stop_port(port: IListeningPort) -> None:
    stopped = port.stopListening()
    if stopped is not None:
        await stopped


def _exit_failed() -> None:
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def _websocket_resource(factory: ChatSocketFactory) -> Any:
    from autobahn.twisted.resource import WebSocketResource

    return WebSocketResource(factory)
