"""Chat clients that send, change, follow and resume with ``after`` on any daemon, into a History.

Members send messages over their sockets and, in a mix, change messages over HTTP: edit
and delete their own, react to and unreact any; one change at a time per member (so
the history knows the order of a member's changes of a message). Each follows its chats
from seq 0 and records every frame (message or event) it gets.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

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

from tests.reliability.history import DEFINITE_FAILURES, Change, History, Report
from tests.reliability.timeline import Entry, MessageState
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


#: The emoji members react with (one needs percent-encoding in the path, one two code points).
EMOJI = ("\U0001f44d", "\U0001f389", "\u2764\ufe0f", "ok")

#: Seconds a change over HTTP may take before it is given up as indeterminate.
CHANGE_TIMEOUT = 10.0

#: How many recent messages of a chat a member keeps in mind to change.
RECENT = 30


class Member:
    """A signed-in member of some chats: one socket, resumed with ``after`` on any daemon."""

    def __init__(self, name: str, token: str, chats: Sequence[str], urls: Sequence[str],
                 history: History, home: int = 0, text_size: int = 24,
                 user_id: int = 0) -> None:
        self.name, self.token, self.chats, self.user_id = name, token, list(chats), user_id
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
        # What the member knows of its chats, to choose changes that make sense.
        self.own: dict[str, list[int]] = {chat: [] for chat in self.chats}
        self.recent: dict[str, list[int]] = {chat: [] for chat in self.chats}
        self.gone: set[tuple[str, int]] = set()
        self.reacted: dict[tuple[str, int, str], bool] = {}
        self.changing: Deferred[None] | None = None
        self.changes = 0
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
        self.history.invoke(self.name, chat, client_id, text=self._message(client_id))
        self.pending[client_id] = chat
        if self._conn is not None:
            self._transmit(client_id, chat)
        return client_id

    def _transmit(self, client_id: str, chat: str) -> None:
        self.history.attempt(client_id)
        self._frame({"type": "send", "chat": chat, "client_id": client_id,
                     "message": self._message(client_id)})

    def _message(self, name: str) -> str:
        return f"{name} {self._text}"

    # -- changes over HTTP ---------------------------------------------------------------------

    def change(self, rng: random.Random) -> bool:
        """Start one change (edit, delete, react, unreact) of a message it knows, over
        HTTP; False (nothing started) while one is under way or there is nothing to do."""
        if self.changing is not None or self.stopped:
            return False
        chat = rng.choice(self.chats)
        own = [seq for seq in self.own[chat] if (chat, seq) not in self.gone]
        recent = [seq for seq in self.recent[chat] if (chat, seq) not in self.gone]
        mine = [key for key, on in self.reacted.items()
                if on and key[0] == chat and (chat, key[1]) not in self.gone]
        pick = rng.random()
        text = emoji = None
        if pick < 0.4 and own:
            kind, target = "edit", rng.choice(own[-5:])
            self.changes += 1
            text = self._message(f"{self.name}-e{self.changes}")
        elif pick < 0.5 and len(own) > 1:
            kind, target = "delete", own[0]
        elif pick < 0.65 and mine:
            _, target, emoji = rng.choice(mine)
            kind = "unreact"
        elif recent:
            target, emoji = rng.choice(recent[-10:]), rng.choice(EMOJI)
            kind = "unreact" if self.reacted.get((chat, target, emoji)) else "react"
        else:
            return False
        change = self.history.change(self.name, self.user_id, chat, kind, target,
                                     text=text, emoji=emoji)
        changing = Deferred.fromCoroutine(self._change(change))
        if not changing.called:
            self.changing = changing
        return True

    async def _change(self, c: Change) -> None:
        path = f"/api/chats/{c.chat}/messages/{c.target}"
        if c.emoji is not None:
            path += "/reactions/" + quote(c.emoji, safe="")
        method = {"edit": "PATCH", "delete": "DELETE", "react": "PUT", "unreact": "DELETE"}
        body = {"message": c.text} if c.kind == "edit" else None
        url = self.urls[(self.home + self._attempt) % len(self.urls)]
        try:
            call = defer.ensureDeferred(Api(url).call(method[c.kind], path, body,
                                                      token=self.token))
            status, reply = await call.addTimeout(CHANGE_TIMEOUT, reactor)
        except Exception:
            self.history.unknown(c.key)
            status, reply = None, None
        finally:
            self.changing = None
        if status == 200:
            self.history.applied(c.key, reply["event"])
        elif isinstance(reply, dict) and "error" in reply:
            self.history.fail(c.key, reply["error"]["code"])
        elif status is not None:
            self.history.unknown(c.key)
        if c.kind == "delete" or (isinstance(reply, dict) and "error" in reply
                                  and reply["error"]["code"] == "conflict"):
            self.gone.add((c.chat, c.target))  # deleted (or maybe): leave it alone
        elif c.emoji is not None:  # done, or maybe: either way the next may undo it
            self.reacted[(c.chat, c.target, c.emoji)] = c.kind == "react"

    def _learn(self, frame: dict[str, Any]) -> None:
        """Remember messages to change, from the frames of a chat."""
        chat, seq = frame["chat"], frame["seq"]
        if chat not in self.recent:
            return
        if frame["type"] == "message" and not frame.get("deleted"):
            self.recent[chat] = [*self.recent[chat][-RECENT:], seq]
        elif frame.get("kind") == "delete":
            self.gone.add((chat, frame["target"]))

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
        if kind in ("message", "event"):
            chat, seq = frame["chat"], frame["seq"]
            self.history.receive_frame(self.name, frame)
            if seq > self.highest.get(chat, 0):
                self.highest[chat] = seq
            self._learn(frame)
        elif kind == "sent":
            client_id = frame["client_id"]
            self.history.ok(client_id, frame["seq"], frame["id"])
            self.pending.pop(client_id, None)
            if frame["chat"] in self.own:
                self.own[frame["chat"]] = [*self.own[frame["chat"]][-RECENT:], frame["seq"]]
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
                 rate: float = 50.0, text_size: int = 24, mix: float = 0.35,
                 seed: int | None = None) -> None:
        self.urls = list(urls)
        self.history = History()
        self.mix = mix  # the share of actions that are changes (when one can be made)
        self.rng = random.Random(seed)
        self.clients, self.n_chats, self.chats_each = clients, chats, min(chats_each, chats)
        self.rate, self.text_size = rate, text_size
        self.members: list[Member] = []
        self.chat_uris: list[str] = []
        self.owner_token: dict[str, str] = {}
        self._ticker: LoopingCall | None = None
        self._next = 0
        self.sent = 0  # messages sent
        self.changed = 0  # changes made
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
            self.history.joined(body["chat"]["uri"], owner.id, creator=True)
        for i, user in enumerate(users):
            mine = [self.chat_uris[(i + k) % self.n_chats] for k in range(self.chats_each)]
            for uri in mine:
                await self.join(apis[i % len(apis)], uri, user.token, user.id)
            self.members.append(Member(user.name, user.token, mine, self.urls, self.history,
                                       home=i % len(self.urls), text_size=self.text_size,
                                       user_id=user.id))

    async def join(self, api: Api, uri: str, token: str, user_id: int) -> None:
        """Join a chat (the join event is in the history's expectations)."""
        status, body = await api.call("POST", f"/api/chats/{uri}/members", token=token)
        assert status == 200, body
        self.history.joined(uri, user_id)

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
        """``rate`` actions a second, members in turn, until ``limit`` if given: a change
        (a ``mix`` of them) when the member can make one, else a new message."""
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
            if self.limit is not None and self.actions >= self.limit:
                self.stop_sending()
                return
            member = self.members[self._next % len(self.members)]
            chat = member.chats[(self._next // len(self.members)) % len(member.chats)]
            self._next += 1
            if self.rng.random() < self.mix and member.change(self.rng):
                self.changed += 1
            else:
                member.send(chat)
                self.sent += 1

    @property
    def actions(self) -> int:
        return self.sent + self.changed

    def stop_sending(self) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()

    async def sent_at_least(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.actions < count and time.monotonic() < deadline:
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

    async def _pages(self, uri: str, what: str, limit: int) -> list[dict[str, Any]]:
        api = Api(self.urls[0])
        items: list[dict[str, Any]] = []
        after = 0
        for _ in range(10_000):
            status, body = await api.call(
                "GET", f"/api/chats/{uri}/{what}?after={after}&limit={limit}",
                token=self.owner_token[uri])
            assert status == 200, body
            items += body[what]
            if not body["has_more"] or not body[what]:
                return items
            after = body[what][-1]["seq"]
        raise AssertionError(f"paging {what} did not end")

    async def stored(self, uri: str) -> tuple[list[Entry], dict[int, MessageState]]:
        """The chat's timeline (GET events) and its messages' states (GET messages)."""
        timeline = [Entry.parse(e) for e in await self._pages(uri, "events", 500)]
        states = {m["seq"]: MessageState.parse(m)
                  for m in await self._pages(uri, "messages", 200)}
        return timeline, states

    async def finish(self, settle: float = 30.0) -> Report:
        """Stop sending, let every send settle and every member catch up, check."""
        self.stop_sending()
        deadline = time.monotonic() + settle
        while (any(m.pending or m.changing for m in self.members)
               and time.monotonic() < deadline):
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
            self.history.store(uri, *await self.stored(uri))
        return self.history.check()

    def stats(self) -> dict[str, Any]:
        closes: dict[Any, int] = {}
        for m in self.members:
            for code, n in m.stats.closes.items():
                closes[code] = closes.get(code, 0) + n
        changes: dict[str, int] = {}
        for c in self.history.changes.values():
            key = f"{c.kind} {c.outcome.value}"
            changes[key] = changes.get(key, 0) + 1
        return {"connects": sum(m.stats.connects for m in self.members),
                "failed_connects": sum(m.stats.failed_connects for m in self.members),
                "retries": sum(m.stats.retries for m in self.members),
                "resubscribes": sum(m.stats.resubscribes for m in self.members),
                "closes": closes, "changes": changes}


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
