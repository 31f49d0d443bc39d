"""Two `twistd chatire` processes on one PostgreSQL and one RabbitMQ: live delivery crosses."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.support.client import Api, Socket
from tests.support.daemons import DaemonProcess, fresh_vhost, rabbitmqctl, sleep
from tests.support.services import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


@pytest.fixture
def backing() -> Iterator[tuple[str, str, str]]:
    with fresh_database() as db, fresh_vhost() as (vhost, amqp):
        yield db, vhost, amqp


@pytest_twisted.async_yield_fixture
async def daemons(backing: tuple[str, str, str], tmp_path: Path) -> AsyncIterator[Any]:
    db, _, amqp = backing
    pair = [DaemonProcess(tmp_path, db, amqp, name=name) for name in ("a", "b")]
    try:
        await defer.gatherResults([defer.ensureDeferred(d.start()) for d in pair])
        yield pair
    finally:
        for d in pair:
            await d.stop()


class Reader:
    """A subscriber that checks what it gets: every seq once, in order."""

    def __init__(self, socket: Socket, uri: str, last: int = 0) -> None:
        self.socket, self.uri, self.seqs = socket, uri, [last] if last else []

    async def read_until(self, last_seq: int, timeout: float = 20.0) -> None:
        while not self.seqs or self.seqs[-1] < last_seq:
            frame = await self.socket.next_of("message", timeout)
            assert frame["chat"] == self.uri
            self.seqs.append(frame["seq"])

    def check(self, first: int = 1) -> None:
        assert self.seqs == list(range(first, first + len(self.seqs))), self.seqs


async def _chat_of(api: Api, members: int) -> tuple[list[Any], str]:
    users = [await api.user() for _ in range(members)]
    uri = await users[0].new_chat()
    for user in users[1:]:
        await user.join(uri)
    return users, uri


@pytest_twisted.ensureDeferred
async def test_every_client_on_either_daemon_gets_every_message_once_in_order(
        daemons: list[DaemonProcess], backing: tuple[str, str, str]) -> None:
    a, b = daemons
    users, uri = await _chat_of(Api(a.base_url), 4)
    readers = []
    for i, user in enumerate(users):
        daemon = (a, b)[i % 2]
        socket = await Socket.open(daemon.base_url, user.token)
        await socket.subscribe(uri)
        readers.append(Reader(socket, uri))
    total = 0
    for round_ in range(10):
        for i, reader in enumerate(readers):
            reader.socket.send({"type": "send", "chat": uri, "message": f"r{round_} u{i}",
                                "client_id": f"{round_}-{i}"})
            total += 1
    joins = len(users) - 1  # seqs 1..3 are the joins; the messages follow
    await defer.gatherResults([defer.ensureDeferred(r.read_until(joins + total))
                               for r in readers])
    for reader in readers:
        reader.check(first=joins + 1)
        assert len(reader.seqs) == total

    # One exclusive queue per daemon, however many sockets and chats.
    _, vhost, _ = backing
    more_chats = [await users[0].new_chat() for _ in range(3)]
    extra = [await Socket.open(d.base_url, users[0].token) for d in (a, b, a, b)]
    for socket in extra:
        for chat in more_chats:
            await socket.subscribe(chat)
    queues = [line for line in rabbitmqctl("list_queues", "-p", vhost, "name").splitlines()
              if line.startswith("amq.gen")]
    assert len(queues) == 2, queues
    bindings = rabbitmqctl("list_bindings", "-p", vhost, "source_name", "destination_name")
    for chat in [uri, *more_chats]:
        bound = [line for line in bindings.splitlines()
                 if line.startswith(f"chatire.chat.{chat}\t")]
        assert len(bound) == 2, (chat, bound)  # one binding per daemon, not per socket
    for socket in [r.socket for r in readers] + extra:
        await socket.close()


@pytest_twisted.ensureDeferred
async def test_reconnecting_to_the_other_daemon_with_after_loses_nothing(
        daemons: list[DaemonProcess]) -> None:
    a, b = daemons
    (alice, bob), uri = await _chat_of(Api(a.base_url), 2)
    socket = await Socket.open(a.base_url, bob.token)
    await socket.subscribe(uri)
    reader = Reader(socket, uri)
    for i in range(5):  # seqs 2..6 (bob's join is 1)
        await alice.post(uri, f"before {i}")
    await reader.read_until(6)
    await socket.close()
    for i in range(7):
        await alice.post(uri, f"while away {i}")
    again = await Socket.open(b.base_url, bob.token)
    assert (await again.subscribe(uri, after=reader.seqs[-1]))["last_seq"] == 13
    resumed = Reader(again, uri, last=reader.seqs[-1])
    sender = await Socket.open(a.base_url, alice.token)
    for i in range(3):
        sender.send({"type": "send", "chat": uri, "message": f"live {i}", "client_id": f"l{i}"})
    await resumed.read_until(16)
    resumed.check(first=6)
    await again.close()
    await sender.close()


@pytest_twisted.ensureDeferred
async def test_delivery_survives_the_broker_closing_every_connection(
        daemons: list[DaemonProcess], backing: tuple[str, str, str]) -> None:
    a, b = daemons
    _, vhost, _ = backing
    (alice, bob), uri = await _chat_of(Api(a.base_url), 2)
    on_b = await Socket.open(b.base_url, bob.token)
    await on_b.subscribe(uri)
    reader = Reader(on_b, uri)
    sender = await Socket.open(a.base_url, alice.token)
    sent = 0
    for burst in range(6):
        for _ in range(10):
            sent += 1
            sender.send({"type": "send", "chat": uri, "message": f"m{sent}",
                         "client_id": f"c{sent}"})
        if burst == 2:
            rabbitmqctl("close_all_connections", "-p", vhost, "chatire fault test")
        await sleep(0.2)
    await reader.read_until(sent + 1, timeout=30)  # after bob's join (seq 1)
    reader.check(first=2)
    assert len(reader.seqs) == sent
    for daemon in (a, b):  # both links come back by themselves
        for _ in range(150):
            response = await Api(daemon.base_url).call("GET", "/healthz")
            if response[0] == 200:
                break
            await sleep(0.1)
        assert response == (200, {"store": "ok", "bus": "ok"})
    await on_b.close()
    await sender.close()


@pytest_twisted.ensureDeferred
async def test_timeline_events_and_read_state_cross_daemons(
        daemons: list[DaemonProcess]) -> None:
    """Edits, reactions and deletes made on one daemon reach subscribers on the other in
    seq order; a read mark on one daemon reaches the user's socket on the other; a replay
    on the other daemon shows the message as it is now (no frame cached before the edit)."""
    a, b = daemons
    (alice, bob), uri = await _chat_of(Api(a.base_url), 2)
    on_b = await Socket.open(b.base_url, bob.token)
    await on_b.subscribe(uri)
    await alice.post(uri, "first")  # seq 2, on a
    frame = await on_b.next_of("message")
    assert (frame["seq"], frame["message"]) == (2, "first")  # b caches this frame
    assert (await alice.call("PATCH", f"/api/chats/{uri}/messages/2", {"message": "1st"}))[0] == 200
    assert (await bob.call("PUT", f"/api/chats/{uri}/messages/2/reactions/ok"))[0] == 200
    kinds = [(await on_b.next())["kind"] for _ in range(2)]
    assert kinds == ["edit", "react"]
    replay = await Socket.open(b.base_url, bob.token)
    await replay.subscribe(uri, after=1)
    again = await replay.next()
    assert (again["seq"], again["message"], again["reactions"][0]["count"]) == (2, "1st", 1)
    assert [(await replay.next())["seq"] for _ in range(2)] == [3, 4]
    # Bob reads on daemon a; his socket on daemon b hears of it within a second.
    on_a = await Socket.open(a.base_url, bob.token)
    await on_a.subscribe(uri)
    on_a.send({"type": "read", "chat": uri, "seq": 4})
    assert await on_b.next_of("read", timeout=1.5) == {"type": "read", "chat": uri, "seq": 4}
    assert (await alice.call("DELETE", f"/api/chats/{uri}/messages/2"))[0] == 200
    gone = await on_b.next_of("event")
    assert (gone["kind"], gone["target"], gone["seq"]) == ("delete", 2, 5)
    for sock in (on_a, on_b, replay):
        await sock.close()


@pytest_twisted.ensureDeferred
async def test_removal_and_deletion_end_subscriptions_on_the_other_daemon(
        daemons: list[DaemonProcess]) -> None:
    a, b = daemons
    (owner, bob, carol), uri = await _chat_of(Api(a.base_url), 3)
    bob_on_b = await Socket.open(b.base_url, bob.token)
    carol_on_b = await Socket.open(b.base_url, carol.token)
    for ws in (bob_on_b, carol_on_b):
        await ws.subscribe(uri)
    started = time.monotonic()
    assert (await owner.call("DELETE", f"/api/chats/{uri}/members/{bob.id}?ban=1"))[0] == 204
    ended = await bob_on_b.next_of("unsubscribed", timeout=1.0)
    assert ended == {"type": "unsubscribed", "chat": uri, "reason": "removed"}
    assert time.monotonic() - started < 1.0
    bob_on_b.send({"type": "send", "chat": uri, "message": "let me back", "client_id": "b1"})
    assert (await bob_on_b.next_of("error"))["code"] == "forbidden"
    assert (await Api(b.base_url).call("POST", f"/api/chats/{uri}/members",
                                       token=bob.token))[0] == 403
    assert (await owner.call("DELETE", f"/api/chats/{uri}"))[0] == 204
    ended = await carol_on_b.next_of("unsubscribed", timeout=1.0)
    assert ended == {"type": "unsubscribed", "chat": uri, "reason": "deleted"}
    assert (await Api(b.base_url).call("GET", f"/api/chats/{uri}/messages",
                                       token=carol.token))[0] == 404
    for ws in (bob_on_b, carol_on_b):
        await ws.close()


@pytest_twisted.ensureDeferred
async def test_presence_crosses_daemons_as_one(daemons: list[DaemonProcess]) -> None:
    """A user on both daemons is online once; the members list says so on either daemon."""
    a, b = daemons
    (alice, bob), uri = await _chat_of(Api(a.base_url), 2)
    watcher = await Socket.open(a.base_url, alice.token)
    assert (await watcher.subscribe(uri))["online"] == [alice.id]
    sockets = [await Socket.open(d.base_url, bob.token) for d in (b, a, b)]
    for ws in sockets:
        await ws.subscribe(uri)
    frame = await watcher.next_of("presence", timeout=1.0)
    assert (frame["user"]["id"], frame["online"]) == (bob.id, True)
    # Daemon b hears of alice (on a) through the bus: within a second, a little more on
    # a loaded machine.
    for _ in range(30):
        _, body = await Api(b.base_url).call("GET", f"/api/chats/{uri}", token=alice.token)
        online = {m["id"]: m["online"] for m in body["members"]}
        if online == {alice.id: True, bob.id: True}:
            break
        await sleep(0.1)
    assert online == {alice.id: True, bob.id: True}
    await sleep(0.5)
    assert [f for f in watcher.frames.pending if f.get("type") == "presence"] == []
    for ws in sockets:
        await ws.close()
    await watcher.close()


@pytest_twisted.ensureDeferred
async def test_a_killed_daemons_users_go_offline_within_90_seconds(
        daemons: list[DaemonProcess]) -> None:
    """SIGKILL says nothing to anyone: the other daemon lets its users' presence expire."""
    a, b = daemons
    (alice, bob), uri = await _chat_of(Api(a.base_url), 2)
    watcher = await Socket.open(b.base_url, alice.token)
    await watcher.subscribe(uri)
    on_a = await Socket.open(a.base_url, bob.token)
    await on_a.subscribe(uri)
    frame = await watcher.next_of("presence", timeout=5.0)
    assert (frame["user"]["id"], frame["online"]) == (bob.id, True)
    killed = time.monotonic()
    await a.stop(signal.SIGKILL)
    frame = await watcher.next_of("presence", timeout=90.0)
    assert (frame["user"]["id"], frame["online"]) == (bob.id, False)
    assert time.monotonic() - killed <= 90
    _, body = await Api(b.base_url).call("GET", f"/api/chats/{uri}", token=alice.token)
    assert {m["id"]: m["online"] for m in body["members"]} == {alice.id: True, bob.id: False}
    await watcher.close()
