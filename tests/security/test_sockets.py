"""Attacks on the socket path: bad names, non-members, floods, expiry, closed sockets."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from chatire.frames import CONTROL
from tests.integration.test_amqp_bus import rabbitmqctl
from tests.security.helpers import closed_within, open_ws, refused, still_open
from tests.security.test_revocation import check_leave, check_sign_out
from tests.support.client import Api, Socket
from tests.support.daemons import DaemonProcess, daemon_pair, fresh_vhost, sleep
from tests.support.services import fresh_database

#: Names no client may follow: the daemon's own channel (old and new) and what
#: RabbitMQ or the uri rule refuses.
BAD_NAMES = ["_control", CONTROL, "", "x" * 300, "amq.gen-1", "a.b", "a/b", "é"]


async def _error(ws: Socket, frame: dict[str, Any]) -> dict[str, Any]:
    ws.send(frame)
    return await ws.next_of("error")


# -- 1: reserved and bad names -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_bad_and_reserved_names_get_an_error_and_touch_nothing(
        make_daemon: Any, db_url: str) -> None:
    daemon = await make_daemon(db=db_url)
    alice = await Api(daemon.base_url).user()
    ws = await Socket.open(daemon.base_url, alice.token)
    for name in BAD_NAMES:
        error = await _error(ws, {"type": "subscribe", "chat": name})
        assert error["code"] == "not_found", (name, error)  # PROTOCOL: names, not shapes
        assert error["chat"] == name
    for name in ("_control", CONTROL, "amq.gen-1"):  # valid length: the name rule says no
        assert (await _error(ws, {"type": "subscribe", "chat": name}))["code"] == "not_found"
    assert daemon.hub.subscription_count() == 0
    assert daemon.bus._followed == {CONTROL}  # the node's own channel is still followed
    # ... and it still works: a sign-out closes the socket at once.
    other = await Socket.open(daemon.base_url, alice.token, auth_frame=False)
    assert (await alice.call("DELETE", "/api/auth/token"))[0] == 204
    assert (await closed_within(other, 1.0))[0] == 4001
    assert (await closed_within(ws, 1.0))[0] == 4001


@pytest.fixture
def backing() -> Iterator[tuple[str, str, str]]:
    with fresh_database() as db, fresh_vhost() as (vhost, amqp):
        yield db, vhost, amqp


@pytest_twisted.async_yield_fixture
async def two_daemons(backing: tuple[str, str, str],
                      tmp_path: Path) -> AsyncIterator[list[DaemonProcess]]:
    db, _vhost, amqp = backing
    async with daemon_pair(tmp_path, db, amqp) as pair:
        yield pair


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_control_subscribe_does_not_switch_off_cross_daemon_control(
        two_daemons: list[DaemonProcess]) -> None:
    a, b = two_daemons
    await sleep(0.2)
    mallory = await Api(b.base_url).user()
    ws = await Socket.open(b.base_url, mallory.token)
    for name in ("_control", CONTROL):
        assert (await _error(ws, {"type": "subscribe", "chat": name}))["code"] == "not_found"
    await ws.close()
    await sleep(0.3)
    # Sign-outs and leaves made on a still reach b.
    await check_sign_out(Api(a.base_url), b.base_url)
    await check_leave(Api(a.base_url), b.base_url)


# -- 4: non-members create nothing on the broker; subscriptions per socket ------------


async def _exchanges(vhost: str) -> set[str]:
    rows = await rabbitmqctl("list_exchanges", "-p", vhost, "--no-table-headers", "name")
    return {row[0] for row in rows}


async def _bindings(vhost: str) -> list[tuple[str, ...]]:
    rows = await rabbitmqctl("list_bindings", "-p", vhost, "--no-table-headers",
                             "source_name", "destination_name")
    return sorted(tuple(row) for row in rows)


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_non_members_and_made_up_chats_declare_nothing_on_the_broker(
        make_daemon: Any, backing: tuple[str, str, str]) -> None:
    db, vhost, amqp = backing
    daemon = await make_daemon(db=db, bus=amqp)
    api = Api(daemon.base_url)
    alice, mallory = await api.user(), await api.user()
    uri = await alice.new_chat()
    await sleep(0.5)
    before = await _exchanges(vhost)
    ws = await Socket.open(daemon.base_url, mallory.token)
    for _ in range(30):
        error = await _error(ws, {"type": "subscribe", "chat": secrets.token_urlsafe(18)})
        assert error["code"] == "not_found"
    assert (await _error(ws, {"type": "subscribe", "chat": uri}))["code"] == "forbidden"
    await sleep(0.5)
    assert await _exchanges(vhost) == before
    assert daemon.hub.subscription_count() == 0
    # The member's subscription does declare and bind the chat's exchange.
    member = await Socket.open(daemon.base_url, alice.token)
    await member.subscribe(uri)
    for _ in range(50):
        if f"chatire.chat.{uri}" in await _exchanges(vhost):
            break
        await sleep(0.1)
    assert await _exchanges(vhost) == before | {f"chatire.chat.{uri}"}
    # Deleting the chat removes its exchange (and with it every daemon's binding).
    assert (await alice.call("DELETE", f"/api/chats/{uri}"))[0] == 204
    for _ in range(50):
        if f"chatire.chat.{uri}" not in await _exchanges(vhost):
            break
        await sleep(0.1)
    assert await _exchanges(vhost) == before
    assert not [b for b in await _bindings(vhost) if uri in b[0]]
    await member.close()
    await ws.close()


@pytest_twisted.ensureDeferred
async def test_subscriptions_per_socket_are_capped(make_daemon: Any, db_url: str) -> None:
    daemon = await make_daemon(db=db_url, max_subscriptions=3)
    alice = await Api(daemon.base_url).user()
    chats = [await alice.new_chat() for _ in range(5)]
    ws = await Socket.open(daemon.base_url, alice.token)
    for uri in chats[:3]:
        await ws.subscribe(uri)
    error = await _error(ws, {"type": "subscribe", "chat": chats[3]})
    assert (error["code"], error["chat"]) == ("rate_limited", chats[3])
    await ws.subscribe(chats[0], after=0)  # again: not a new one
    ws.send({"type": "unsubscribe", "chat": chats[1]})
    await ws.next_of("unsubscribed")
    await ws.subscribe(chats[4])
    assert daemon.hub.subscription_count() == 3
    another = await Socket.open(daemon.base_url, alice.token)  # the cap is per socket
    await another.subscribe(chats[3])


@pytest_twisted.ensureDeferred
async def test_a_refused_subscribe_keeps_the_sockets_subscription(
        make_daemon: Any, db_url: str) -> None:
    daemon = await make_daemon(db=db_url)
    alice = await Api(daemon.base_url).user()
    uri = await alice.new_chat()
    ws = await Socket.open(daemon.base_url, alice.token)
    await ws.subscribe(uri)
    error = await _error(ws, {"type": "subscribe", "chat": uri, "after": 99})
    assert error["code"] == "invalid"
    await alice.post(uri, "still here")
    assert (await ws.next_of("message"))["message"] == "still here"
    assert daemon.hub.subscription_count() == 1


# -- 5: one account cannot take the daemon --------------------------------------------


@pytest_twisted.ensureDeferred
async def test_sockets_per_user_are_capped(make_daemon: Any, db_url: str) -> None:
    daemon = await make_daemon(db=db_url, max_sockets_per_user=3)
    api = Api(daemon.base_url)
    alice, bob = await api.user(), await api.user()
    header = {"Authorization": f"Bearer {alice.token}"}
    mine = [await open_ws(daemon.base_url, headers=header) for _ in range(2)]
    mine.append(await Socket.open(daemon.base_url, alice.token))
    assert "429" in await refused(daemon.base_url, headers=header)
    late = await open_ws(daemon.base_url)  # first-frame auth: an error, then close 4029
    late.send({"type": "auth", "token": alice.token})
    error = await late.next_of("error")
    assert error["code"] == "rate_limited"
    assert (await closed_within(late, 2.0))[0] == 4029
    assert await still_open(mine[0], 0.1)
    await Socket.open(daemon.base_url, bob.token)  # another user is not affected
    await mine[0].close()
    await sleep(0.1)
    await open_ws(daemon.base_url, headers=header)  # a slot is free again
    assert "429" in await refused(daemon.base_url, headers=header)


@pytest_twisted.ensureDeferred
async def test_zero_turns_the_socket_cap_off(make_daemon: Any) -> None:
    daemon = await make_daemon(max_sockets_per_user=0)
    alice = await Api(daemon.base_url).user()
    for _ in range(5):
        await Socket.open(daemon.base_url, alice.token, auth_frame=False)


@pytest_twisted.ensureDeferred
async def test_typing_frames_are_relayed_once_per_interval(
        make_daemon: Any, db_url: str) -> None:
    daemon = await make_daemon(db=db_url, typing_interval=1.0)
    api = Api(daemon.base_url)
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    sender = await Socket.open(daemon.base_url, alice.token)
    watcher = await Socket.open(daemon.base_url, bob.token)
    for ws in (sender, watcher):
        await ws.subscribe(uri)
    started = time.monotonic()
    while time.monotonic() - started < 0.6:
        for _ in range(50):
            sender.send({"type": "typing", "chat": uri})
        await sleep(0.05)
    seen = 0
    while True:
        try:
            frame = await watcher.next(timeout=0.3)
        except Exception:
            break
        seen += frame["type"] == "typing"
    assert seen == 1
    await sleep(1.0)
    sender.send({"type": "typing", "chat": uri})  # a new interval: relayed again
    assert (await watcher.next_of("typing"))["user"]["id"] == alice.id


# -- 8: deep JSON ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_deeply_nested_json_is_an_invalid_frame_and_the_socket_stays(
        make_daemon: Any, db_url: str) -> None:
    daemon = await make_daemon(db=db_url)
    alice = await Api(daemon.base_url).user()
    uri = await alice.new_chat()
    ws = await Socket.open(daemon.base_url, alice.token)
    for depth in (33, 5000, 100_000):
        bomb = b'{"type":"send","chat":"x","message":' + b"[" * depth + b"]" * depth + b"}"
        ws.send(bomb[: 60_000] if len(bomb) > 60_000 else bomb)
        error = await ws.next_of("error")
        assert error["code"] == "invalid", error
    ws.send({"type": "send", "chat": uri, "message": "[" * 40, "client_id": "a"})
    assert (await ws.next_of("sent"))["seq"] == 1  # brackets in strings do not count
    assert await still_open(ws, 0.1)


# -- 3: expiry -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_socket_closes_4001_when_its_token_expires(
        make_daemon: Any, db_url: str) -> None:
    daemon = await make_daemon(db=db_url, token_lifetime=2)
    alice = await Api(daemon.base_url).user()
    uri = await alice.new_chat()
    started = time.monotonic()
    sockets = [await Socket.open(daemon.base_url, alice.token),
               await Socket.open(daemon.base_url, alice.token, auth_frame=False)]
    await sockets[0].subscribe(uri)
    for ws in sockets:
        code, _ = await closed_within(ws, 4.0)
        assert code == 4001
    assert 1.5 < time.monotonic() - started < 3.5


# -- 9: work for a closed socket ---------------------------------------------------------


async def _closed_socket_cycles(daemon: Any, token: str, uri: str, cycles: int) -> None:
    """Open, authenticate, subscribe and close at once; wait until every socket is gone."""
    for _ in range(cycles):
        ws = await open_ws(daemon.base_url)
        ws.send({"type": "auth", "token": token})
        ws.send({"type": "subscribe", "chat": uri})
        assert ws.protocol is not None
        ws.protocol.sendClose(1000)  # behind the frames: read with them, before the auth ran
    for _ in range(100):
        if daemon.sockets.open_count == 0:
            break
        await sleep(0.05)
    await sleep(0.5)  # whatever was queued has run by now


@pytest_twisted.ensureDeferred
async def test_subscribes_queued_on_a_closed_socket_leave_nothing(
        make_daemon: Any, db_url: str) -> None:
    daemon = await make_daemon(db=db_url)
    alice = await Api(daemon.base_url).user()
    uri = await alice.new_chat()
    await _closed_socket_cycles(daemon, alice.token, uri, 100)
    assert daemon.sockets.open_count == 0
    assert daemon.hub.subscription_count() == 0
    assert daemon.hub.connections() == []
    assert daemon.bus._followed == {CONTROL}
    assert getattr(daemon.sockets, "user_sockets", {}) == {}


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_closed_sockets_leave_no_binding_on_the_broker(
        make_daemon: Any, backing: tuple[str, str, str]) -> None:
    db, vhost, amqp = backing
    daemon = await make_daemon(db=db, bus=amqp)
    alice = await Api(daemon.base_url).user()
    uri = await alice.new_chat()
    await sleep(0.5)
    before = await _bindings(vhost)
    await _closed_socket_cycles(daemon, alice.token, uri, 200)
    assert daemon.hub.subscription_count() == 0
    assert daemon.bus._followed == {CONTROL}
    assert await _bindings(vhost) == before
