"""The daemon as one Twisted service: start the store, the bus, then listen; stop gracefully."""

from __future__ import annotations

import sys
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.web.server import Site

from chatire.api import ChatireAPI
from chatire.chats import ChatService
from chatire.config import Config
from chatire.delivery import Hub
from chatire.drain import Drain
from chatire.interfaces import IBus, IStore
from chatire.logs import quiet_accept_errors
from chatire.metrics import MeteredBus, Metrics
from chatire.notify.service import Notifications, PublicURL
from chatire.ws import CLOSE_GOING_AWAY, ChatSocketFactory

log = Logger()


def default_web_root() -> FilePath[str]:
    """The browser UI: ``web/`` beside the package (source tree or installed share)."""
    here = FilePath(__file__).parent()
    for candidate in (here.sibling("web"), here.child("web")):
        if candidate.child("index.html").exists():
            return candidate
    return here.sibling("web")


@attrs.define(slots=False, eq=False)
class ChatireService(Service):
    """The daemon's parts (wired by chatire.daemon.build) started and stopped in order."""

    config: Config
    reactor: Any
    metrics: Metrics
    store: IStore
    bus: IBus
    publishing: MeteredBus
    hub: Hub
    chats: ChatService
    sockets: ChatSocketFactory
    api: ChatireAPI
    drain: Drain
    site: Site
    metrics_site: Site
    notifications: Notifications
    public_url: PublicURL
    ports: list[IListeningPort] = attrs.field(factory=list, init=False)
    ready: Deferred[None] = attrs.field(factory=Deferred, init=False)

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
            if len(self.ports) == 1:
                self.public_url.learn(address, secure=description.startswith("ssl:"))
            log.info("chatire listening on {description} ({address})",
                     description=description, address=address)
        for description in self.config.metrics_listen:
            port = await serverFromString(self.reactor, description).listen(self.metrics_site)
            self.ports.append(port)
            log.info("chatire serving /metrics on {description} ({address})",
                     description=description, address=port.getHost())
        self.notifications.start()

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
        # A notification being sent is let finish (one not finished is sent again later).
        if not await _within(self.notifications.stop(), min(left(), 2.0), clock):
            log.warn("chatire stopping: notifications still being sent at the deadline")
        # Read marks still in their coalescing window are written, not lost.
        if not await _within(self.sockets.timeline.flush(), min(left(), 2.0), clock):
            log.warn("chatire stopping: read marks not written at the deadline")
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

