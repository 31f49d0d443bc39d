"""What the failover run measures besides the history: each daemon's /healthz over time,
posts over HTTP with every answer timed, and sign-outs whose sockets must close 4001."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet import defer, reactor
from twisted.internet.task import LoopingCall

from tests.reliability.history import History
from tests.support.client import Api, Socket
from tests.support.daemons import sleep

#: Seconds an HTTP request may take before it counts as unanswered (not a clear error).
ANSWER_WITHIN = 10.0


async def answer(api: Api, method: str, path: str, body: Any = None, token: str | None = None,
                 ) -> tuple[int | None, Any]:
    """(status, body) of one request; (None, the error) if unanswered in ANSWER_WITHIN s."""
    try:
        call = defer.ensureDeferred(api.call(method, path, body, token=token))
        status, reply = await call.addTimeout(ANSWER_WITHIN, reactor)
    except Exception as e:  # refused, reset, timed out: no answer at all
        return None, repr(e)
    return status, reply


def clear_refusal(status: int | None, reply: Any) -> bool:
    """A 503 with the protocol's error body: the client knows the post was not taken."""
    return (status == 503 and isinstance(reply, dict)
            and reply.get("error", {}).get("code") == "unavailable")


@attrs.frozen
class Sample:
    """One /healthz answer: when it was asked, which daemon, the store's and bus's state."""

    t: float
    daemon: int
    store_ok: bool
    bus_ok: bool


class HealthWatch:
    """Asks every daemon's /healthz every ``interval`` seconds, all run long."""

    def __init__(self, urls: Sequence[str], interval: float = 0.2) -> None:
        self.apis = [Api(url) for url in urls]
        self.interval = interval
        self.samples: list[Sample] = []
        self._busy: set[int] = set()
        self._loop = LoopingCall(self._tick)

    def start(self) -> None:
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        for i in range(len(self.apis)):
            if i not in self._busy:  # one question at a time per daemon
                self._busy.add(i)
                defer.ensureDeferred(self._ask(i))

    async def _ask(self, i: int) -> None:
        asked = time.monotonic()  # (the daemon checks its store and bus when asked)
        try:
            _, body = await answer(self.apis[i], "GET", "/healthz")
            body = body if isinstance(body, dict) else {}
            self.samples.append(Sample(asked, i, body.get("store") == "ok",
                                       body.get("bus") == "ok"))
        finally:
            self._busy.discard(i)

    async def until_down(self, part: str, daemon: int, since: float,
                         timeout: float = 30.0) -> None:
        """Wait until a /healthz asked after ``since`` says ``part`` is down on ``daemon``."""
        end = time.monotonic() + timeout
        while not any(s.t >= since and s.daemon == daemon and not getattr(s, f"{part}_ok")
                      for s in self.samples[-20:]):
            if time.monotonic() > end:
                raise AssertionError(f"daemon {daemon}'s {part} never went down")
            await sleep(0.05)

    def down_between(self, part: str, since: float, until: float,
                     ) -> tuple[float, float] | None:
        """The times of the first and the last answer in [since, until) in which ``part``
        ("store" or "bus") was not ok on some daemon; None if it stayed ok throughout."""
        down = [s.t for s in self.samples if since <= s.t < until
                and not getattr(s, f"{part}_ok")]
        return (min(down), max(down)) if down else None


@attrs.define
class Answer:
    """One HTTP post and how it ended."""

    sent: float
    answered: float
    status: int | None
    clear: bool  # acknowledged, or refused with the protocol's error

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)


class Poster:
    """A member posting over HTTP to one daemon every ``interval`` s; a refused post is
    retried with its client_id (idempotent); each send is in the history."""

    def __init__(self, history: History, name: str, token: str, url: str, chat: str,
                 interval: float = 0.25) -> None:
        self.history, self.name, self.token = history, name, token
        self.api, self.chat, self.interval = Api(url), chat, interval
        self.answers: list[Answer] = []
        self.stopping = False
        self._count = 0
        self._done: defer.Deferred[None] | None = None

    def start(self) -> None:
        self._done = defer.Deferred.fromCoroutine(self._run())

    async def stop(self) -> None:
        """Stop once the post under way is acknowledged (or after 60 s)."""
        self.stopping = True
        if self._done is not None:
            await self._done.addTimeout(60, reactor)

    async def _run(self) -> None:
        pending: str | None = None
        while not (self.stopping and pending is None):
            if pending is None:
                self._count += 1
                pending = f"{self.name}-{self._count}"
                self.history.invoke(self.name, self.chat, pending, text=self._text(pending))
            self.history.attempt(pending)
            sent = time.monotonic()
            status, reply = await answer(self.api, "POST", f"/api/chats/{self.chat}/messages",
                                         {"message": self._text(pending), "client_id": pending},
                                         token=self.token)
            if status in (200, 201):
                self.history.ok(pending, reply["message"]["seq"], reply["message"]["id"])
                pending = None
            elif isinstance(reply, dict) and "error" in reply:
                self.history.fail(pending, reply["error"]["code"])
            else:
                self.history.unknown(pending)
            self.answers.append(Answer(sent, time.monotonic(), status,
                                       status in (200, 201) or clear_refusal(status, reply)))
            await sleep(self.interval)

    @staticmethod
    def _text(client_id: str) -> str:
        return f"{client_id} posted over HTTP"


@attrs.define
class Victim:
    """A signed-in user with a socket open on one daemon, signed out on the other."""

    name: str
    token: str
    home: int
    socket: Socket
    closed_at: float | None = None
    close_code: int | None = None
    revoked_at: float | None = None  # when the sign-out was acknowledged (204)
    refusals: int = 0  # sign-outs refused with 503 before that
    unclear: int = 0  # sign-outs with no clear answer

    @classmethod
    async def open(cls, urls: Sequence[str], home: int, name: str) -> Victim:
        user = await Api(urls[home]).user(name, password="revoked horse")
        socket = await Socket.open(urls[home], user.token)
        victim = cls(user.name, user.token, home, socket)
        socket.closed.addCallback(victim._closed)
        return victim

    def _closed(self, code: int | None) -> int | None:
        self.closed_at, self.close_code = time.monotonic(), code
        return code

    async def sign_out(self, via: str, limit: float = 60.0) -> None:
        """DELETE /api/auth/token on ``via`` until it is acknowledged (a 503 is retried)."""
        api = Api(via)
        end = time.monotonic() + limit
        while time.monotonic() < end:
            status, reply = await answer(api, "DELETE", "/api/auth/token", token=self.token)
            if status == 204:
                self.revoked_at = time.monotonic()
                return
            if clear_refusal(status, reply):
                self.refusals += 1
            else:
                self.unclear += 1
            await sleep(0.25)
        raise AssertionError(f"{self.name}: the sign-out was not taken in {limit} s")

    async def until_closed(self, within: float) -> None:
        """Wait up to ``within`` s after the sign-out for the socket to close."""
        assert self.revoked_at is not None
        while self.closed_at is None and time.monotonic() < self.revoked_at + within:
            await sleep(0.05)

    @property
    def close_delay(self) -> float | None:
        """Seconds from the acknowledged sign-out to the socket's close."""
        if self.closed_at is None or self.revoked_at is None:
            return None
        return self.closed_at - self.revoked_at

    async def refused_everywhere(self, urls: Sequence[str]) -> bool:
        """Whether every daemon now refuses the token (401)."""
        for url in urls:
            status, _ = await answer(Api(url), "GET", "/api/me", token=self.token)
            if status != 401:
                return False
        return True
