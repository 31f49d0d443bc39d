"""The daemon as one Twisted service: start the store, the bus, then listen; stop gracefully."""

from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from chatire.api import ChatireAPI
from chatire.auth import Passwords, thread_runner
from chatire.bus import bus_from_url
from chatire.chats import ChatService
from chatire.config import Config
from chatire.delivery import Hub
from chatire.interfaces import IBus
from chatire.site import make_site
from chatire.store import store_from_url
from chatire.ws import CLOSE_GOING_AWAY, ChatSocketFactory

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
        self.store = store_from_url(config.db, reactor)
        self.bus = bus if bus is not None else bus_from_url(config.bus, reactor)
        self.chats = ChatService(self.store, config, reactor, Passwords(thread_runner(reactor)))
        self.sockets = ChatSocketFactory(self.chats, None, config, reactor)
        self.hub = Hub(self.chats, self.bus, reactor, self.sockets.prepare)
        self.sockets.hub = self.hub
        self.chats.events = self.hub
        web_root = FilePath(config.web_root) if config.web_root else default_web_root()
        self.api = ChatireAPI(self.chats, self.bus, reactor, web_root,
                              websocket=_websocket_resource(self.sockets),
                              max_body_bytes=config.max_body_bytes)
        self.site = make_site(self.api.resource(), config.max_body_bytes,
                              timeout=config.http_timeout or None)
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
            self.ports.append(port)
            address = port.getHost()
            log.info("chatire listening on {description} ({address})",
                     description=description, address=address)

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
        await DeferredList([Deferred.fromCoroutine(_stop_port(p)) for p in self.ports])
        self.ports.clear()
        self.sockets.close_all(CLOSE_GOING_AWAY, "server shutting down")
        try:
            await self.hub.stop()
        finally:
            self.sockets.stopFactory()
            await self.store.stop()


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
