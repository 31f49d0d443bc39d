"""A real webhook receiver on loopback: records every request, answers scripted statuses."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site


@attrs.frozen
class Received:
    """One request as it arrived: its path, headers of interest and raw body."""

    path: str
    body: bytes
    signature: str | None
    content_type: str | None

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        digest = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return self.signature == f"sha256={digest}"


class _Hook(Resource):
    isLeaf = True

    def __init__(self, receiver: Receiver) -> None:
        super().__init__()
        self.receiver = receiver

    def render_POST(self, request: Any) -> bytes:
        header = request.getHeader(b"x-chatire-signature")
        kind = request.getHeader(b"content-type")
        self.receiver.requests.append(Received(
            request.path.decode(), request.content.read(),
            None if header is None else header.decode(),
            None if kind is None else kind.decode()))
        status = self.receiver.statuses.pop(0) if self.receiver.statuses else 200
        request.setResponseCode(status)
        return b"{}"


class Receiver:
    """Listens on 127.0.0.1 (an ephemeral port); ``statuses`` answers the next requests
    in order (then 200)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self._port: Any = None

    async def start(self) -> Receiver:
        self._port = reactor.listenTCP(0, Site(_Hook(self)), interface="127.0.0.1")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port.getHost().port}/hook"

    async def stop(self) -> None:
        """Stop listening (again: nothing to do)."""
        port, self._port = self._port, None
        if port is not None:
            await port.stopListening()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The requests once at least ``count`` arrived (fails after ``timeout``)."""
        waited = 0.0
        while len(self.requests) < count:
            if waited >= timeout:
                raise AssertionError(f"{len(self.requests)} requests, expected {count}")
            await deferLater(reactor, 0.05, lambda: None)
            waited += 0.05
        return self.requests

    def ids(self) -> list[str]:
        return [r.json["id"] for r in self.requests]


def settled(delay: float = 0.3) -> Deferred[None]:
    """A short real pause, to show that nothing more arrives."""
    return deferLater(reactor, delay, lambda: None)
