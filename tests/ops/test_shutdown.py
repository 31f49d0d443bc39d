"""SIGTERM: stop accepting, commit and confirm posts in flight, close sockets 1001, exit in time."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import defer
from twisted.internet.defer import Deferred

from tests.support.client import Api, Socket
from tests.support.daemons import DaemonProcess, fresh_vhost, sleep
from tests.support.services import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

DEADLINE = 5.0


@pytest.fixture
def backing() -> Iterator[tuple[str, str]]:
    with fresh_database() as db, fresh_vhost() as (_, amqp):
        yield db, amqp


async def _send_until_closed(socket: Socket, uri: str) -> tuple[dict[str, int], list[Any]]:
    """Send a frame every few ms until the server closes; the seqs confirmed by `sent`."""
    proto = socket.protocol
    assert proto is not None
    i = 0
    while not socket.closed.called and i < 2000:
        if proto.state == proto.STATE_OPEN:
            socket.send({"type": "send", "chat": uri, "message": f"ws {i}", "client_id": f"w{i}"})
            i += 1
        await sleep(0.005)
    frames = []
    while socket.frames.pending:
        frames.append(await socket.frames.get())
    sent = {f["client_id"]: f["seq"] for f in frames if f["type"] == "sent"}
    errors = [f for f in frames if f["type"] == "error"]
    return sent, errors


async def _post_until_refused(api: Api, token: str, uri: str,
                              created: dict[str, int]) -> dict[str, int]:
    """POST one message after another until the daemon stops answering; the 201s (also
    in ``created`` as they come)."""
    for i in range(2000):
        try:
            status, body = await api.call("POST", f"/api/chats/{uri}/messages",
                                          {"message": f"http {i}", "client_id": f"h{i}"},
                                          token=token)
        except Exception:  # connection refused or lost: the daemon is gone
            return created
        if status != 201:
            assert status == 503, body  # shutting down: refused, not stored
            return created
        created[f"h{i}"] = body["message"]["seq"]
    return created


@pytest_twisted.ensureDeferred
async def test_sigterm_drains_posts_closes_1001_and_loses_nothing(
        backing: tuple[str, str], tmp_path: Path) -> None:
    db, amqp = backing
    a = DaemonProcess(tmp_path, db, amqp, "--send-rate", "0",
                      "--shutdown-timeout", str(DEADLINE), name="a")
    b = DaemonProcess(tmp_path, db, amqp, "--send-rate", "0", name="b")
    await defer.gatherResults([defer.ensureDeferred(d.start()) for d in (a, b)])
    try:
        api = Api(a.base_url)
        alice, bob = await api.user(), await api.user()
        uri = await alice.new_chat()
        await bob.join(uri)
        reader = await Socket.open(a.base_url, bob.token)
        await reader.subscribe(uri)
        sender = await Socket.open(a.base_url, alice.token)

        sending = defer.ensureDeferred(_send_until_closed(sender, uri))
        created: dict[str, int] = {}
        posting = defer.ensureDeferred(_post_until_refused(api, alice.token, uri, created))
        await sleep(0.7)
        for _ in range(100):  # a loaded machine answers slowly: stop amid the posts
            if len(created) >= 5:
                break
            await sleep(0.1)
        signalled = time.monotonic()
        code = await a.stop(signal.SIGTERM, timeout=DEADLINE + 5)  # SIGKILL after that
        took = time.monotonic() - signalled
        # twistd re-raises SIGTERM after a clean stop: -15 (143 in a shell) is a clean exit.
        assert code == -signal.SIGTERM, a.tail()
        assert took < DEADLINE + 2.0, took  # the stop is bounded by --shutdown-timeout

        sent, errors = await sending
        created = await posting
        assert sender.closed.called and await sender.closed == 1001
        assert await reader.closed == 1001
        assert len(sent) > 10 and len(created) > 3, (len(sent), len(created))
        assert all(e["code"] == "unavailable" for e in errors), errors

        log = a.log.read_text()
        assert "Traceback" not in log and "Unhandled" not in log, log[-3000:]
        assert "chatire stopped" in log

        # Everything confirmed is in the store, once, in a gap-free sequence.
        history: list[dict[str, Any]] = []
        after = 0
        while True:
            status, page = await Api(b.base_url).call(
                "GET", f"/api/chats/{uri}/messages?after={after}&limit=200", token=alice.token)
            assert status == 200, page
            history += page["messages"]
            if not page["has_more"]:
                break
            after = history[-1]["seq"]
        by_client = {m["client_id"]: m["seq"] for m in history}
        # Seq 1 is bob's join; the messages take every seq after it.
        assert [m["seq"] for m in history] == list(range(2, len(history) + 2))
        for client_id, seq in {**sent, **created}.items():
            assert by_client.get(client_id) == seq, client_id

        # The reader resumes on the other daemon from the last seq it saw: nothing lost.
        seen = []
        while reader.frames.pending:
            frame = await reader.frames.get()
            if frame["type"] == "message":
                seen.append(frame["seq"])
        assert seen == list(range(2, len(seen) + 2))
        again = await Socket.open(b.base_url, bob.token)
        last = seen[-1] if seen else 1
        subscribed = await again.subscribe(uri, after=last)
        assert subscribed["last_seq"] == len(history) + 1
        while last < len(history) + 1:
            frame = await again.next_of("message")
            assert frame["seq"] == last + 1
            last = frame["seq"]
        await again.close()
    finally:
        for d in (a, b):
            await d.stop()


@pytest_twisted.ensureDeferred
async def test_http_only_daemon_stops_cleanly_on_sqlite(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", "memory://",
                           "--shutdown-timeout", "3")
    await daemon.start()
    assert await daemon.healthy()
    started = time.monotonic()
    code = await daemon.stop(signal.SIGTERM, timeout=10)
    assert code == -signal.SIGTERM
    assert time.monotonic() - started < 4
    log = daemon.log.read_text()
    assert "Traceback" not in log and "chatire stopped" in log


class _SlowStore:
    """append_messages answers only when the test says so."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Deferred[Any]]] = []

    def append_messages(self, chat: Any, posts: list[Any], now: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((posts, d))
        return d


def test_the_appender_drains_then_refuses() -> None:
    from datetime import UTC, datetime

    from chatire.appender import Appender
    from chatire.errors import Unavailable
    from chatire.model import Appended, Chat, Message, Post, User

    store = _SlowStore()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    user = User(1, "u", "u")
    chat = Chat(1, "c" * 24, "", user, now, 0)
    appender = Appender(store, lambda: now)  # type: ignore[arg-type]
    first = appender.append(chat, Post(1, "one", None))
    second = appender.append(chat, Post(1, "two", None))  # waits for the first commit
    drained = appender.close()
    assert not drained.called
    refused: list[Any] = []
    appender.append(chat, Post(1, "late", None)).addErrback(refused.append)
    assert refused and refused[0].check(Unavailable)

    def stored(posts: list[Post], seq: int) -> list[Appended]:
        return [Appended(Message(chat.uri, seq + i, seq + i, user, p.text, None, now), True)
                for i, p in enumerate(posts)]

    posts, d = store.calls.pop(0)
    d.callback(stored(posts, 1))
    assert first.called and not second.called and not drained.called
    posts, d = store.calls.pop(0)
    d.callback(stored(posts, 2))
    assert second.called and drained.called
    assert appender.close().called  # idle: at once


async def _keep_calling(base_url: str, calls: list[tuple[str, bytes]], token: str,
                        uri: str, outcomes: list[object], name: str) -> None:
    """One keep-alive client calling round the list until a connect is refused."""
    from twisted.internet import reactor
    from twisted.internet.error import ConnectionRefusedError
    from twisted.web.client import HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 1
    pool.retryAutomatically = False  # a dropped request must show, not be retried
    try:
        for i in range(100000):
            method, body = calls[i % len(calls)]
            path = (f"/api/chats/{uri}/messages" if method == "POST" else "/api/chats"
                    if method == "GET" else "/api/auth/token")
            if method == "SIGN-IN":
                method = "POST"
            try:
                response = await treq.request(
                    method, base_url + path, pool=pool,
                    data=body.replace(b"#", f"{name}{i}".encode()),
                    headers={"Authorization": f"Bearer {token}",
                             "Content-Type": "application/json"})
                await response.content()
                outcomes.append(response.code)
            except ConnectionRefusedError:
                outcomes.append("refused")
                return
            except Exception as e:  # a request sent and never answered: a reset
                outcomes.append(e)
                return
    finally:
        await pool.closeCachedConnections()


@pytest_twisted.ensureDeferred
async def test_sigterm_answers_every_http_request_it_took(tmp_path: Path) -> None:
    """Under load, a SIGTERM leaves no request unanswered: each one gets its answer (a 503
    once the daemon is stopping), and new connections are refused, never reset."""
    daemon = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / 'l.db'}", "memory://",
                           "--send-rate", "0", "--login-failures", "100000",
                           "--shutdown-timeout", "5")
    await daemon.start()
    try:
        api = Api(daemon.base_url)
        alice = await api.user(password="correct horse battery")
        uri = await alice.new_chat()
        post = (b'{"message":"load","client_id":"#"}')
        sign_in = b'{"username":"%s","password":"correct horse battery"}' % (
            alice.name.encode())
        mixes = [[("GET", b"")], [("POST", post)], [("SIGN-IN", sign_in)],
                 [("GET", b""), ("POST", post)]]
        outcomes: list[list[object]] = [[] for _ in range(12)]
        clients = [defer.ensureDeferred(_keep_calling(
            daemon.base_url, mixes[n % len(mixes)], alice.token, uri, outcomes[n], f"c{n}-"))
            for n in range(12)]
        await sleep(1.0)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        await defer.gatherResults(clients)
        assert daemon.proc is not None
        code = await daemon.stop(signal.SIGTERM)
        assert code == -signal.SIGTERM, daemon.tail()
        for n, seen in enumerate(outcomes):
            statuses = [o for o in seen if isinstance(o, int)]
            assert statuses and set(statuses) <= {200, 201, 503}, (n, set(statuses))
            assert seen[-1] == "refused", (n, seen[-3:])
        assert "Traceback" not in daemon.log.read_text()
    finally:
        await daemon.stop()
