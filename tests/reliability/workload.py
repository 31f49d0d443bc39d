"""Chat clients that send, follow and resume with ``after`` on any daemon, into a History."""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Sequence
from typing import Any

import attrs
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    connectWS,
)
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from tests.reliability.history import DEFINITE_FAILURES, History, Report, Stored
from tests.support.client import Api
from tests.support.daemons import sleep


class _Conn(WebSocketClientProtocol):
    """One WebSocket connection of a Member."""

    factory: _ConnFactory

    def onOpen(self) -> None:
        if not self.factory.opened.called:
            self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.member.on_frame(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.close_code = code
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"closed {code} {reason}"))
        if not self.factory.closed.called:
            self.factory.closed.callback(code)


class _ConnFactory(WebSocketClientFactory):
    protocol = _Conn

    def __init__(self, member: Member, url: str, token: str) -> None:
        super().__init__(url, headers={"Authorization": f"Bearer {token}"})
        self.member = member
        self.opened: Deferred[_Conn] = Deferred()
        self.closed: Deferred[int | None] = Deferred()
        self.close_code: int | None = None
        self.setProtocolOptions(openHandshakeTimeout=5, closeHandshakeTimeout=2,
                                maxFramePayloadSize=0, maxMessagePayloadSize=0)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.opened.called:
            self.opened.errback(reason)
        if not self.closed.called:
            self.closed.callback(None)


@attrs.define
class Stats:
    """What a member saw of the faults."""

    connects: int = 0
    failed_connects: int = 0
    closes: dict[int | None, int] = attrs.Factory(dict)
    retries: int = 0
    resubscribes: int = 0


class Member:
    """A signed-in member of some chats: one socket, resumed with ``after`` on any daemon."""

    def __init__(self, name: str, token: str, chats: Sequence[str], urls: Sequence[str],
                 history: History, home: int = 0, text_size: int = 24) -> None:
        self.name, self.token, self.chats = name, token, list(chats)
        self.urls, self.history, self.home = list(urls), history, home
        self.highest = dict.fromkeys(self.chats, 0)
        self.subscribed: set[str] = set()
        self.pending: dict[str, str] = {}  # client_id -> chat, not yet acknowledged
        self.offline_until = 0.0
        self.stopped = False
        self.stats = Stats()
        self._conn: _Conn | None = None
        self._count = 0
        self._text = "x" * max(0, text_size - 12)
        self._done: Deferred[None] | None = None
        self._attempt = 0
        for chat in self.chats:
            history.follow(name, chat, 0)

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._done = Deferred.fromCoroutine(self._run())

    @property
    def online(self) -> bool:
        return self._conn is not None and set(self.chats) <= self.subscribed

    async def _run(self) -> None:
        while not self.stopped:
            wait = self.offline_until - time.monotonic()
            if wait > 0:
                await sleep(wait)
                continue
            url = self.urls[(self.home + self._attempt) % len(self.urls)]
            ws_url = url.replace("http://", "ws://") + "/ws"
            factory = _ConnFactory(self, ws_url, self.token)
            connectWS(factory, timeout=5)
            try:
                conn = await factory.opened
            except Exception:
                self.stats.failed_connects += 1
                self._attempt += 1
                await sleep(0.2 + random.random() * 0.2)
                continue
            self.stats.connects += 1
            self._conn = conn
            self._opened(conn)
            code = await factory.closed
            self.stats.closes[code] = self.stats.closes.get(code, 0) + 1
            self._conn = None
            self.subscribed.clear()
            for client_id in self.pending:
                self.history.unknown(client_id)  # no answer on that connection
            self._attempt += 1  # the next connection goes to the next daemon
            if not self.stopped:
                await sleep(0.1 + random.random() * 0.2)

    def _opened(self, conn: _Conn) -> None:
        for chat in self.chats:
            self._subscribe(chat)
        for client_id, chat in list(self.pending.items()):
            self._transmit(client_id, chat)

    def cut(self, seconds: float) -> None:
        """Drop the connection abruptly and stay away for ``seconds``."""
        self.offline_until = time.monotonic() + seconds
        conn = self._conn
        if conn is not None and conn.transport is not None:
            conn.transport.abortConnection()

    async def stop(self) -> None:
        self.stopped = True
        conn = self._conn
        if conn is not None:
            conn.sendClose(1000)
        if self._done is not None:
            done, self._done = self._done, None
            try:
                await done.addTimeout(5, reactor)
            except defer.TimeoutError:
                if self._conn is not None and self._conn.transport is not None:
                    self._conn.transport.abortConnection()

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, body: dict[str, Any]) -> None:
        if self._conn is not None:
            self._conn.sendMessage(json.dumps(body).encode())

    def _subscribe(self, chat: str) -> None:
        self._frame({"type": "subscribe", "chat": chat, "after": self.highest[chat]})

    def send(self, chat: str) -> str:
        """Send a new message to a chat (now, or once connected); its client_id."""
        self._count += 1
        client_id = f"{self.name}-{self._count}"
        self.history.invoke(self.name, chat, client_id)
        self.pending[client_id] = chat
        if self._conn is not None:
            self._transmit(client_id, chat)
        return client_id

    def _transmit(self, client_id: str, chat: str) -> None:
        self.history.attempt(client_id)
        self._frame({"type": "send", "chat": chat, "client_id": client_id,
                     "message": f"{client_id} {self._text}"})

    def _retry(self, client_id: str) -> None:
        chat = self.pending.get(client_id)
        if chat is not None and self._conn is not None and not self.stopped:
            self.stats.retries += 1
            self._transmit(client_id, chat)

    def _resubscribe(self, chat: str, conn: _Conn) -> None:
        if self._conn is conn and chat not in self.subscribed and not self.stopped:
            self.stats.resubscribes += 1
            self._subscribe(chat)

    def on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            chat, seq = frame["chat"], frame["seq"]
            self.history.receive(self.name, chat, seq, frame["id"], frame.get("client_id"))
            if seq > self.highest.get(chat, 0):
                self.highest[chat] = seq
        elif kind == "sent":
            client_id = frame["client_id"]
            self.history.ok(client_id, frame["seq"], frame["id"])
            self.pending.pop(client_id, None)
        elif kind == "subscribed":
            self.subscribed.add(frame["chat"])
        elif kind == "error":
            client_id, chat, code = frame.get("client_id"), frame.get("chat"), frame["code"]
            if client_id is not None and client_id in self.pending:
                self.history.fail(client_id, code)
                if code in DEFINITE_FAILURES:
                    self.pending.pop(client_id, None)
                else:  # unavailable: maybe stored; the same client_id again is safe
                    reactor.callLater(0.3 + random.random() * 0.3, self._retry, client_id)
            elif chat is not None and chat in self.highest and self._conn is not None:
                reactor.callLater(0.3 + random.random() * 0.3, self._resubscribe, chat,
                                  self._conn)
        elif kind == "unsubscribed":
            self.subscribed.discard(frame["chat"])


@attrs.define
class Account:
    """A registered, signed-in user, before it is a Member."""

    name: str
    token: str
    id: int


class Workload:
    """Members in chats on a set of daemons; a ticker that sends; a checked end."""

    def __init__(self, urls: Sequence[str], *, clients: int, chats: int, chats_each: int = 2,
                 rate: float = 50.0, text_size: int = 24) -> None:
        self.urls = list(urls)
        self.history = History()
        self.clients, self.n_chats, self.chats_each = clients, chats, min(chats_each, chats)
        self.rate, self.text_size = rate, text_size
        self.members: list[Member] = []
        self.chat_uris: list[str] = []
        self.owner_token: dict[str, str] = {}
        self._ticker: LoopingCall | None = None
        self._next = 0
        self.sent = 0
        self.limit: int | None = None

    async def prepare(self) -> None:
        """Register the users (spread over the daemons), make the chats, join them."""
        apis = [Api(url) for url in self.urls]
        run = secrets.token_hex(3)

        async def register(i: int) -> Account:
            api = apis[i % len(apis)]
            user = await api.user(f"m{run}-{i}", password="reliable horse")
            return Account(user.name, user.token, user.id)

        users: list[Account] = []
        for start in range(0, self.clients, 20):
            batch = range(start, min(start + 20, self.clients))
            users += await defer.gatherResults(
                [defer.ensureDeferred(register(i)) for i in batch])
        for c in range(self.n_chats):
            owner = users[c % len(users)]
            status, body = await apis[0].call("POST", "/api/chats", {"title": f"chat {c}"},
                                              token=owner.token)
            assert status == 201, body
            self.chat_uris.append(body["chat"]["uri"])
            self.owner_token[body["chat"]["uri"]] = owner.token
        for i, user in enumerate(users):
            mine = [self.chat_uris[(i + k) % self.n_chats] for k in range(self.chats_each)]
            for uri in mine:
                status, body = await apis[i % len(apis)].call(
                    "POST", f"/api/chats/{uri}/members", token=user.token)
                assert status == 200, body
            self.members.append(Member(user.name, user.token, mine, self.urls, self.history,
                                       home=i % len(self.urls), text_size=self.text_size))

    async def connect(self, timeout: float = 60.0) -> None:
        """Start every member; wait until all are subscribed to all their chats."""
        for member in self.members:
            member.start()
        await self.wait_online(timeout)

    async def wait_online(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(m.online for m in self.members):
            if time.monotonic() > deadline:
                late = [m.name for m in self.members if not m.online]
                raise AssertionError(f"{len(late)} members not online in {timeout} s: {late[:5]}")
            await sleep(0.1)

    # -- sending -----------------------------------------------------------------------------

    def start_sending(self, limit: int | None = None) -> None:
        """Send ``rate`` messages a second, members in turn, until ``limit`` if given."""
        self.limit = limit
        self._ticker = LoopingCall(self._tick)
        interval = 0.05
        self._per_tick = self.rate * interval
        self._credit = 0.0
        self._ticker.start(interval, now=True)

    def _tick(self) -> None:
        self._credit += self._per_tick
        while self._credit >= 1:
            self._credit -= 1
            if self.limit is not None and self.sent >= self.limit:
                self.stop_sending()
                return
            member = self.members[self._next % len(self.members)]
            chat = member.chats[(self._next // len(self.members)) % len(member.chats)]
            self._next += 1
            member.send(chat)
            self.sent += 1

    def stop_sending(self) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()

    async def sent_at_least(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.sent < count and time.monotonic() < deadline:
            await sleep(0.1)

    # -- the end --------------------------------------------------------------------------------

    async def last_seqs(self) -> dict[str, int]:
        api = Api(self.urls[0])
        seqs = {}
        for uri in self.chat_uris:
            status, body = await api.call("GET", f"/api/chats/{uri}", token=self.owner_token[uri])
            assert status == 200, body
            seqs[uri] = body["chat"]["last_seq"]
        return seqs

    async def stored(self, uri: str) -> list[Stored]:
        api = Api(self.urls[0])
        messages: list[Stored] = []
        after = 0
        for _ in range(10_000):
            status, body = await api.call(
                "GET", f"/api/chats/{uri}/messages?after={after}&limit=200",
                token=self.owner_token[uri])
            assert status == 200, body
            messages += [Stored(m["seq"], m["id"], m["client_id"]) for m in body["messages"]]
            if not body["has_more"] or not body["messages"]:
                return messages
            after = body["messages"][-1]["seq"]
        raise AssertionError("history paging did not end")

    async def finish(self, settle: float = 30.0) -> Report:
        """Stop sending, let every send settle and every member catch up, check."""
        self.stop_sending()
        deadline = time.monotonic() + settle
        while any(m.pending for m in self.members) and time.monotonic() < deadline:
            await sleep(0.1)
        targets = await self.last_seqs()
        while time.monotonic() < deadline:
            behind = [m for m in self.members
                      if any(m.highest[c] < targets[c] for c in m.chats)]
            if not behind:
                break
            await sleep(0.1)
        for start in range(0, len(self.members), 50):
            await defer.gatherResults([defer.ensureDeferred(m.stop())
                                       for m in self.members[start:start + 50]])
        for uri in self.chat_uris:
            self.history.store(uri, await self.stored(uri))
        return self.history.check()

    def stats(self) -> dict[str, Any]:
        closes: dict[Any, int] = {}
        for m in self.members:
            for code, n in m.stats.closes.items():
                closes[code] = closes.get(code, 0) + n
        return {"connects": sum(m.stats.connects for m in self.members),
                "failed_connects": sum(m.stats.failed_connects for m in self.members),
                "retries": sum(m.stats.retries for m in self.members),
                "resubscribes": sum(m.stats.resubscribes for m in self.members),
                "closes": closes}


async def probe(workload: Workload, timeout: float = 20.0) -> None:
    """Every member sends one more message; all must be acknowledged (recovered service)."""
    await workload.wait_online(timeout)
    ids = [m.send(m.chats[0]) for m in workload.members]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(workload.history.sends[i].outcome.value == "ok" for i in ids):
            return
        await sleep(0.1)
    late = [i for i in ids if workload.history.sends[i].outcome.value != "ok"]
    raise AssertionError(f"{len(late)} probe sends not acknowledged in {timeout} s: {late[:5]}")
