"""Notifications from real `twistd chatire` processes to a real receiver: a daemon killed
between a post and its due time still gets the notification out once (the other daemon,
or itself after a restart on SQLite), and two daemons never send one twice."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.support.client import Api, User
from tests.support.daemons import DaemonProcess, fresh_vhost, sleep
from tests.support.receiver import Receiver
from tests.support.services import fresh_database


@pytest_twisted.async_yield_fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = await Receiver().start()
    yield hook
    await hook.stop()


@pytest.fixture
def backing() -> Iterator[tuple[str, str]]:
    with fresh_database() as db, fresh_vhost() as (_, amqp):
        yield db, amqp


def _daemon(tmp_path: Path, db: str, bus: str, name: str) -> DaemonProcess:
    return DaemonProcess(tmp_path, db, bus, "--webhook-allow-private", name=name)


async def _away(api: Api, receiver: Receiver, name: str, delay: int) -> User:
    user = await api.user(name)
    status, _ = await user.call("PUT", "/api/me/notifications", {
        "level": "all", "delay": delay, "webhook": {"url": receiver.url}})
    assert status == 200
    return user


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_daemon_killed_before_the_due_time_leaves_it_to_the_other(
        backing: tuple[str, str], tmp_path: Path, receiver: Receiver) -> None:
    db, amqp = backing
    a, b = _daemon(tmp_path, db, amqp, "a"), _daemon(tmp_path, db, amqp, "b")
    await defer.gatherResults([defer.ensureDeferred(d.start()) for d in (a, b)])
    try:
        on_a = Api(a.base_url)
        alice = await on_a.user("alice")
        bob = await _away(on_a, receiver, "bob", delay=3)
        uri = await alice.new_chat("Killed")
        await bob.join(uri)
        await alice.post(uri, "posted on a, which dies now")
        await a.stop(signal.SIGKILL)
        [got] = await receiver.wait_for(1, timeout=15)
        assert got.json["chat"]["uri"] == uri
        assert [m["message"] for m in got.json["messages"]] == ["posted on a, which dies now"]
        await a.start()  # back: it finds nothing left to send
        await sleep(3)
        assert len(receiver.requests) == 1
    finally:
        for d in (a, b):
            await d.stop()


@pytest_twisted.ensureDeferred
async def test_on_sqlite_a_killed_daemon_sends_it_itself_after_a_restart(
        tmp_path: Path, receiver: Receiver) -> None:
    daemon = _daemon(tmp_path, f"sqlite:///{tmp_path / 'one.db'}", "memory://", "one")
    await daemon.start()
    try:
        api = Api(daemon.base_url)
        alice = await api.user("alice")
        bob = await _away(api, receiver, "bob", delay=2)
        uri = await alice.new_chat("Alone")
        await bob.join(uri)
        await alice.post(uri, "before the crash")
        await daemon.stop(signal.SIGKILL)
        await sleep(3)  # past the due time, nobody running
        assert receiver.requests == []
        await daemon.start()
        [got] = await receiver.wait_for(1, timeout=15)
        assert got.json["messages"][0]["message"] == "before the crash"
        await sleep(2)
        assert len(receiver.requests) == 1
    finally:
        await daemon.stop()


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_two_daemons_running_send_each_notification_once(
        backing: tuple[str, str], tmp_path: Path, receiver: Receiver) -> None:
    db, amqp = backing
    pair = [_daemon(tmp_path, db, amqp, name) for name in ("a", "b")]
    await defer.gatherResults([defer.ensureDeferred(d.start()) for d in pair])
    try:
        apis = [Api(d.base_url) for d in pair]
        alice = await apis[0].user("alice")
        readers = [await _away(apis[i % 2], receiver, f"reader{i}", delay=1) for i in range(6)]
        chats = []
        for i in range(4):
            uri = await alice.new_chat(f"Room {i}")
            for reader in readers:
                await reader.join(uri)
            chats.append(uri)
        # Posts through both daemons, so both plan and both claim.
        other = await apis[1].user("carol")
        for uri in chats:
            await other.join(uri)
            await alice.post(uri, "from a")
            await other.post(uri, "from b")
        expected = len(chats) * len(readers)
        got = await receiver.wait_for(expected, timeout=20)
        await sleep(3)
        assert len(receiver.requests) == expected
        ids = receiver.ids()
        assert len(set(ids)) == expected
        pairs = {(r.json["user"]["username"], r.json["chat"]["uri"]) for r in got}
        assert len(pairs) == expected  # one per member per chat
        for request in receiver.requests:
            assert {m["message"] for m in request.json["messages"]} <= {"from a", "from b"}
    finally:
        for d in pair:
            await d.stop()
