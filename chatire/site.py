"""The HTTP site: request bodies capped before they are buffered, each request given a
deadline to arrive whole."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from chatire.jsonin import encode

log = Logger()


_NOT_UTF8 = encode({"error": {"code": "invalid", "message": "the path is not UTF-8"}})


class CappedRequest(Request):
    """A request that stops buffering its body past ``max_body`` bytes, and whose path
    must be UTF-8 (anything else is a JSON 400 before any resource sees it)."""

    max_body = 65536
    too_large = False

    def process(self) -> None:
        try:
            unquote_to_bytes(self.path).decode("utf-8")
        except UnicodeDecodeError:
            # Klein would answer plain text and log a traceback per request.
            self.setResponseCode(400)
            self.setHeader(b"Content-Type", b"application/json; charset=utf-8")
            self.setHeader(b"Cache-Control", b"no-store")
            self.write(_NOT_UTF8)
            self.finish()
            return
        super().process()

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self.too_large = True
            length = 0  # buffer nothing: the reply is 413 whatever follows
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        if self.content is not None and self.content.tell() + len(data) > self.max_body:
            self.too_large = True
            self.content.seek(0)
            self.content.truncate()
            return
        super().handleContentChunk(data)


class DeadlineChannel(HTTPChannel):
    """An HTTP/1.1 channel that gives each request ``request_timeout`` seconds to arrive.

    The clock starts at a request's first byte and stops once its headers and body
    are all in, so a client that trickles them (slowloris) is cut however often it
    sends a byte; the idle timeout (``timeOut``) only covers silence. A WebSocket
    upgrade takes the connection away from the channel, which then never starts
    another deadline. 0 turns it off.
    """

    request_timeout = 30.0
    _deadline: IDelayedCall | None = None

    def dataReceived(self, data: bytes) -> None:
        if (data and self._deadline is None and not self._handlingRequest
                and self.request_timeout > 0):
            self._deadline = self.callLater(self.request_timeout, self._too_slow)
        super().dataReceived(data)

    def allContentReceived(self) -> None:
        self._stop_deadline()
        super().allContentReceived()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_deadline()
        super().connectionLost(reason)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        transport: Any = self.transport
        if transport is None:  # already handed over or gone
            return
        log.info("closing a client that took over {timeout} s to send a request",
                 timeout=self.request_timeout, client=getattr(transport.getPeer(), "host", None))
        transport.abortConnection()


def make_site(resource: IResource, max_body: int, *, site_class: type[Site] = Site,
              request_timeout: float = 0.0, **kwargs: Any) -> Site:
    """A Site (of ``site_class``) whose requests cap their bodies at ``max_body`` bytes
    and must arrive whole within ``request_timeout`` seconds (0: no limit)."""
    site = site_class(resource, **kwargs)
    capped: type[Request] = type("Request", (CappedRequest,), {"max_body": max_body})
    site.requestFactory = capped
    site.protocol = type("Channel", (DeadlineChannel,),  # type: ignore[method-assign]
                         {"request_timeout": request_timeout})
    return site
