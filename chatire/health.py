"""Liveness (/livez: the reactor answers) and readiness (/healthz: the store and the bus)."""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from chatire.interfaces import IBus, IStore
from chatire.jsonin import encode

#: Paths that probes call every few seconds: kept out of the access log.
PROBES = frozenset({b"/livez", b"/healthz"})

LIVE: dict[str, str] = {"status": "ok"}


@attrs.frozen
class Readiness:
    """Whether this daemon can serve: its store answers a ping in time and its bus is up."""

    store: IStore
    bus: IBus
    clock: IReactorTime
    timeout: float = 2.0

    async def check(self) -> tuple[int, dict[str, str]]:
        """(200 or 503, {"store": ..., "bus": ...})."""
        ping: Deferred[None] = self.store.ping()
        ping.addTimeout(self.timeout, self.clock)
        try:
            await ping
            store = "ok"
        except Exception as e:  # any failure to answer is 'unavailable'
            store = f"unavailable: {e.__class__.__name__}"
        bus = "ok" if self.bus.connected else "unavailable"
        return (200 if store == bus == "ok" else 503), {"store": store, "bus": bus}


def _write(request: IRequest, status: int, body: dict[str, str]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    return encode(body)


class LiveResource(Resource):
    """GET /livez on the metrics listener: 200 whenever the reactor runs this."""

    isLeaf = True

    def render_GET(self, request: IRequest) -> bytes:
        return _write(request, 200, LIVE)


class ReadyResource(Resource):
    """GET /healthz on the metrics listener: the same answer as on the public port."""

    isLeaf = True

    def __init__(self, readiness: Readiness) -> None:
        super().__init__()
        self._readiness = readiness

    def render_GET(self, request: Request) -> int:
        gone: list[object] = []
        request.notifyFinish().addBoth(gone.append)  # fires early only if the client left

        def answer(result: tuple[int, dict[str, str]] | Failure) -> None:
            if gone:
                return
            if isinstance(result, Failure):  # check() always answers: a bug's last resort
                result = (503, {"error": result.getErrorMessage()})
            request.write(_write(request, *result))
            request.finish()

        Deferred.fromCoroutine(self._readiness.check()).addBoth(answer)
        return NOT_DONE_YET
