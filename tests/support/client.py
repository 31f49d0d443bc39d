"""Test clients that speak PROTOCOL.md over real sockets: HTTP (treq) and WebSocket (Autobahn)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import treq
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    connectWS,
)
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue


class Api:
    """The HTTP API of one daemon, for tests."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None,
                   raw: bytes | None = None, headers: dict[str, str] | None = None,
                   ) -> tuple[int, Any]:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response = await treq.request(method, self.base_url + path, data=data,
                                      headers=sent, persistent=False)
        content = await response.content()
        self.last_headers = response.headers
        if not content:
            return response.code, None
        return response.code, json.loads(content)

    async def user(self, name: str | None = None, password: str = "correct horse") -> User:
        """Register and sign in a fresh user."""
        name = name or "u" + secrets.token_hex(5)
        status, _ = await self.call("POST", "/api/auth/register",
                                    {"username": name, "password": password})
        assert status == 201, status
        status, body = await self.call("POST", "/api/auth/token",
                                       {"username": name, "password": password})
        assert status == 200, body
        return User(self, name, body["token"], body["user"]["id"])


class User:
    """A signed-in user of the API, for tests."""

    def __init__(self, api: Api, name: str, token: str, id: int) -> None:
        self.api, self.name, self.token, self.id = api, name, token, id

    async def call(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.api.call(method, path, body, token=self.token, **kw)

    async def new_chat(self, title: str = "test") -> str:
        status, body = await self.call("POST", "/api/chats", {"title": title})
        assert status == 201, body
        return str(body["chat"]["uri"])

    async def join(self, uri: str) -> None:
        status, body = await self.call("POST", f"/api/chats/{uri}/members")
        assert status == 200, body

    async def post(self, uri: str, text: str, client_id: str | None = None) -> dict[str, Any]:
        status, body = await self.call("POST", f"/api/chats/{uri}/messages",
                                       {"message": text, "client_id": client_id})
        assert status in (200, 201), body
        return dict(body["message"])


class _Socket(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.frames.put(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.closed_code = code
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"closed {code} {reason}"))
        if not self.factory.closed.called:
            self.factory.closed.callback(code)


class Socket:
    """A WebSocket client: send frames, await the next ones."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self.frames: DeferredQueue[dict[str, Any]] = factory.frames
        self.closed: Deferred[int | None] = factory.closed
        self.protocol: _Socket | None = None

    @classmethod
    async def open(cls, base_url: str, token: str | None = None, origin: str | None = None,
                   auth_frame: bool = True, **options: Any) -> Socket:
        url = base_url.replace("http://", "ws://") + "/ws"
        headers = {}
        if token is not None and not auth_frame:
            headers["Authorization"] = f"Bearer {token}"
        factory = WebSocketClientFactory(url, headers=headers, origin=origin)
        factory.protocol = _Socket
        factory.setProtocolOptions(maxFramePayloadSize=0, maxMessagePayloadSize=0, **options)
        factory.frames = DeferredQueue()
        factory.opened = Deferred()
        factory.closed = Deferred()
        factory.closed_code = None
        socket = cls(factory)
        connectWS(factory)
        socket.protocol = await factory.opened
        if token is not None and auth_frame:
            socket.send({"type": "auth", "token": token})
            ready = await socket.next()
            assert ready["type"] == "ready", ready
        return socket

    def send(self, frame: Any) -> None:
        assert self.protocol is not None
        data = frame if isinstance(frame, bytes) else json.dumps(frame).encode()
        self.protocol.sendMessage(data)

    async def next(self, timeout: float = 5.0,
                   skip: tuple[str, ...] = ("presence", "chats_changed")) -> dict[str, Any]:
        """The next frame, passing over presence frames and chat-list nudges (they come
        whenever a member's sockets come and go or a list changes; a test that wants them
        asks with next_of)."""
        while True:
            d = self.frames.get()
            d.addTimeout(timeout, reactor)
            frame: dict[str, Any] = await d
            if frame.get("type") not in skip:
                return frame

    async def next_of(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame of a type, skipping others (typing and the like)."""
        while True:
            frame = await self.next(timeout, skip=())
            if frame["type"] == kind:
                return frame

    async def subscribe(self, uri: str, after: int | None = None) -> dict[str, Any]:
        self.send({"type": "subscribe", "chat": uri, "after": after})
        return await self.next_of("subscribed")

    async def close(self) -> None:
        if self.protocol is not None and not self.closed.called:
            self.protocol.sendClose(1000)
            d = Deferred()
            self.closed.addBoth(lambda r: (d.callback(r), r)[1])
            d.addTimeout(5, reactor)
            await d


def fill_path(path: str, uri: str, seq: int = 1, emoji: str = "%F0%9F%91%8D",
              user_id: int = 1, code: str = "c" * 32) -> str:
    """An OpenAPI path template with its parameters filled in (a chat, a seq, an emoji,
    a user, an invite code)."""
    return (path.replace("{uri}", uri).replace("{seq}", str(seq)).replace("{emoji}", emoji)
            .replace("{user_id}", str(user_id)).replace("{code}", code))
