"""A terminal chat client for chatire: lines you type are sent, messages are printed.

    .venv/bin/python docs/examples/terminal_chat.py --user alice --password 'secret pw' \\
        --server http://127.0.0.1:8000 --server http://127.0.0.1:8001 [--chat URI]

It registers the user if needed, creates a chat (or joins --chat), and follows it over
one WebSocket. When the socket drops it reconnects to the next --server and resumes with
``after`` = the last seq it printed, so a daemon can be killed without losing anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, endpoints, stdio, task
from twisted.protocols.basic import LineReceiver


async def call(server: str, method: str, path: str, body: Any = None,
               token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    response = await treq.request(method, server + path, data=data, headers=headers)
    text = await response.content()
    return response.code, (json.loads(text) if text else None)


class Chat:
    """The client's state: where it is, what it has seen, what it still has to confirm."""

    def __init__(self, servers: list[str], token: str, uri: str) -> None:
        self.servers, self.token, self.uri = servers, token, uri
        self.last_seq = 0
        self.unconfirmed: dict[str, str] = {}
        self.socket: Socket | None = None

    def send(self, text: str) -> None:
        client_id = str(uuid.uuid4())
        self.unconfirmed[client_id] = text
        if self.socket is not None:
            self.socket.send_text(client_id, text)

    def on_frame(self, frame: dict[str, Any]) -> None:
        # Messages and the other events share the chat's seq: both advance it.
        if frame["type"] in ("message", "event") and frame["seq"] == self.last_seq + 1:
            self.last_seq = frame["seq"]
            print(describe(frame), flush=True)
        elif frame["type"] == "sent":
            self.unconfirmed.pop(frame["client_id"], None)
        elif frame["type"] == "error":
            print(f"! {frame['code']}: {frame['message']}", file=sys.stderr, flush=True)


def describe(frame: dict[str, Any]) -> str:
    """One line for a timeline entry: a message, or what an event did."""
    who, seq = frame["user"]["username"], frame["seq"]
    if frame["type"] == "message":
        text = "(deleted)" if frame.get("deleted") else frame["message"]
        return f"[{seq}] {who}: {text}"
    kind, target = frame["kind"], frame.get("target")
    what = {"join": "joined", "leave": "left", "delete": f"deleted #{target}",
            "edit": f"edited #{target}: {frame.get('message', '')}",
            "react": f"reacted {frame.get('emoji')} to #{target}",
            "unreact": f"took back {frame.get('emoji')} on #{target}"}.get(kind, kind)
    return f"* [{seq}] {who} {what}"


class Socket(WebSocketClientProtocol):
    chat: Chat

    def onOpen(self) -> None:
        self.sendMessage(json.dumps({"type": "auth", "token": self.chat.token}).encode())
        after = self.chat.last_seq
        self.sendMessage(json.dumps({"type": "subscribe", "chat": self.chat.uri,
                                     "after": after}).encode())
        self.chat.socket = self
        for client_id, text in list(self.chat.unconfirmed.items()):
            self.send_text(client_id, text)  # same client_id: never stored twice

    def send_text(self, client_id: str, text: str) -> None:
        self.sendMessage(json.dumps({"type": "send", "chat": self.chat.uri, "message": text,
                                     "client_id": client_id}).encode())

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.chat.on_frame(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.chat.socket = None
        self.factory.closed.callback(code)


class Keyboard(LineReceiver):
    delimiter = b"\n"

    def __init__(self, chat: Chat, done: defer.Deferred[None]) -> None:
        self.chat, self.done = chat, done

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").strip()
        if text:
            self.chat.send(text)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(None)


async def follow(reactor: Any, chat: Chat, stop: defer.Deferred[None]) -> None:
    attempt = 0
    while not stop.called:
        server = chat.servers[attempt % len(chat.servers)]
        factory = WebSocketClientFactory(server.replace("http", "ws", 1) + "/ws")
        factory.protocol = type("S", (Socket,), {"chat": chat})
        factory.closed = defer.Deferred()
        host, port = server.split("://")[1].split(":")
        try:
            endpoint = endpoints.TCP4ClientEndpoint(reactor, host, int(port))
            await endpoint.connect(factory)
            print(f"* connected to {server}, resuming after seq {chat.last_seq}",
                  file=sys.stderr, flush=True)
            await factory.closed
        except Exception as e:
            print(f"* {server}: {e}", file=sys.stderr, flush=True)
        attempt += 1
        await task.deferLater(reactor, min(5.0, 0.2 * attempt), lambda: None)


async def main(reactor: Any, args: argparse.Namespace) -> None:
    server = args.server[0]
    await call(server, "POST", "/api/auth/register",
               {"username": args.user, "password": args.password})
    status, body = await call(server, "POST", "/api/auth/token",
                              {"username": args.user, "password": args.password})
    if status != 200:
        raise SystemExit(f"sign-in failed: {body}")
    token = body["token"]
    uri = args.chat
    if uri:
        await call(server, "POST", f"/api/chats/{uri}/members", token=token)
    else:
        _, body = await call(server, "POST", "/api/chats", {"title": "terminal"}, token)
        uri = body["chat"]["uri"]
        print(f"* new chat: {uri}", file=sys.stderr, flush=True)
    chat = Chat(args.server, token, uri)
    stop: defer.Deferred[None] = defer.Deferred()
    stdio.StandardIO(Keyboard(chat, stop))
    following = defer.ensureDeferred(follow(reactor, chat, stop))
    await stop
    while chat.unconfirmed:  # let the last lines be confirmed before leaving
        await task.deferLater(reactor, 0.1, lambda: None)
    await task.deferLater(reactor, args.linger, lambda: None)
    following.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", action="append", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--chat")
    parser.add_argument("--linger", type=float, default=0.5,
                        help="seconds to keep printing after standard input ends")
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, parser.parse_args())))
