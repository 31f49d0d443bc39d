"""Graceful stop of the HTTP side: requests in flight are answered, new ones get 503."""

from __future__ import annotations

import json
import weakref
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

_REFUSAL = json.dumps({"error": {"code": "unavailable",
                                 "message": "the server is shutting down; try again"}},
                      separators=(",", ":")).encode()


class Drain:
    """Counts the HTTP requests in flight on one site and ends its connections cleanly.

    While the daemon runs, requests pass through. Once ``close()`` is called (the
    listening ports are closed by then), a request that arrives on a connection
    still open gets 503 ``unavailable`` with ``Connection: close``; requests in
    flight finish and their connections close after the response; ``idle()``
    fires when none is left, and ``close_connections()`` ends the idle ones.
    """

    def __init__(self) -> None:
        self.closing = False
        self._in_flight: set[Request] = set()
        self._channels: weakref.WeakSet[Any] = weakref.WeakSet()
        self._waiters: list[Deferred[None]] = []

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def wrap(self, resource: IResource) -> IResource:
        """The site's root: ``resource`` behind this drain."""
        return _Draining(resource, self)

    def close(self) -> None:
        """Refuse new requests from now on; the ones in flight close their connection."""
        self.closing = True
        for request in self._in_flight:
            _close_after(request)

    def idle(self) -> Deferred[None]:
        """Fire once no request is in flight."""
        d: Deferred[None] = Deferred()
        if self._in_flight:
            self._waiters.append(d)
        else:
            d.callback(None)
        return d

    def close_connections(self) -> int:
        """Close the connections that wait for a next request; how many were closed."""
        closed = 0
        for channel in list(self._channels):
            if getattr(channel, "transport", None) is not None and not channel.requests:
                channel.loseConnection()
                closed += 1
        return closed

    def _started(self, request: Request) -> None:
        self._in_flight.add(request)
        self._channels.add(request.channel)  # the HTTPChannel: kept while it lives

    def _finished(self, request: Request) -> None:
        if request in self._in_flight:
            self._in_flight.discard(request)
            if not self._in_flight and self._waiters:
                waiters, self._waiters = self._waiters, []
                for waiter in waiters:
                    waiter.callback(None)


def _close_after(request: Request) -> None:
    """Close the request's connection once its response is sent, and say so if not too late."""
    channel = getattr(request, "channel", None)
    if channel is None:
        return  # finished already
    if not request.startedWriting:
        request.setHeader(b"Connection", b"close")
    channel.persistent = False


class _Draining(Resource):
    """The root resource of a Drain: passes requests on, or refuses them once closing."""

    isLeaf = True

    def __init__(self, resource: IResource, drain: Drain) -> None:
        super().__init__()
        self._resource = resource
        self._drain = drain

    def render(self, request: Request) -> Any:
        drain = self._drain
        if drain.closing:
            _close_after(request)
            request.setResponseCode(503)
            request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
            request.setHeader(b"Cache-Control", b"no-store")
            request.setHeader(b"Retry-After", b"1")
            return _REFUSAL
        drain._started(request)
        request.notifyFinish().addBoth(lambda _: drain._finished(request))
        result = self._resource.render(request)
        channel = getattr(request, "channel", None)  # gone once a request finished
        if channel is not None and channel.transport is None:
            drain._finished(request)  # a WebSocket took the connection over: not HTTP now
        return result
