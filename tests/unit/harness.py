"""A node for unit tests: real SQL store (SQLite in memory, inline), memory bus, Clock."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from chatire.auth import Passwords, inline_runner
from chatire.bus.memory import MemoryBroker, MemoryBus
from chatire.chats import ChatService
from chatire.config import Config
from chatire.delivery import Hub
from chatire.model import Chat, Post, User
from chatire.store.sqlite import SQLiteEngine
from chatire.store.sqlstore import SQLStore


def result(d: Deferred[Any]) -> Any:
    """The result of a Deferred that has fired (inline store, Clock time)."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    if hasattr(box[0], "raiseException"):
        box[0].raiseException()
    return box[0]


def run(coroutine: Any) -> Any:
    return result(Deferred.fromCoroutine(coroutine))


class FakeConn:
    """A Subscriber that records what the Hub hands it (frames are the payload bytes)."""

    def __init__(self, user: User | None) -> None:
        self.user = user
        self.token_hash: str | None = None
        self.frames: list[bytes] = []
        self.control: list[dict[str, Any]] = []
        self.shared: list[Any] = []  # the frames prepared once for many connections
        self.closed: tuple[int, str] | None = None

    def deliver(self, frame: Any) -> None:
        self.frames.append(frame)

    def send_json(self, body: dict[str, Any]) -> None:
        self.control.append(body)

    def send_frame(self, frame: Any) -> None:
        import json

        self.shared.append(frame)
        self.control.append(json.loads(frame))  # the harness prepares nothing: the payload

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def seqs(self) -> list[int]:
        import json

        return [json.loads(f)["seq"] for f in self.frames if b'"type":"message"' in f]


class Node:
    """One daemon's delivery core, in memory."""

    def __init__(self, clock: Clock, broker: MemoryBroker, store: SQLStore | None = None,
                 sweep_interval: float = 2.0) -> None:
        self.clock = clock
        if store is None:
            store = SQLStore(SQLiteEngine(":memory:", None, inline=True))
            result(store.start())
        self.store = store
        self.bus = MemoryBus(clock, broker)
        passwords = Passwords(inline_runner, time_cost=1, memory_cost=8, parallelism=1)
        self.hub = Hub(store, self.bus, clock, lambda payload: payload,
                       sweep_interval=sweep_interval)
        self.chats = ChatService(store, Config(send_rate=0), clock, passwords, self.hub)
        self.hub.start()

    def subscribe(self, conn: FakeConn, user: User, uri: str,
                  after: int | None) -> Coroutine[Any, Any, None]:
        """The Hub's subscribe, with ChatService's membership check (as the socket asks)."""
        return self.hub.subscribe(conn, user, uri, after, self.chats.member_chat)

    def user(self, name: str) -> User:
        return run(self.chats.register(name, "correct horse", None, "192.0.2.1"))

    def chat(self, owner: User, *members: User) -> Chat:
        chat = run(self.chats.create_chat(owner, "t"))
        for member in members:
            run(self.chats.join(member, chat.uri))
        return chat

    def commit_silently(self, chat: Chat, user: User, count: int) -> list[Any]:
        """Store messages without telling any Hub (as if their publish was lost)."""
        posts = [Post(user.id, f"quiet {i}", None) for i in range(count)]
        return [a.message for a in result(self.store.append_messages(chat, posts,
                                                                     self.chats.now()))]
