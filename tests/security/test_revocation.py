"""Sign-out and leave end what they allowed within a second: on one daemon and across two."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.security.helpers import closed_within, still_open
from tests.security.test_logs import assert_absent
from tests.support.client import Api, Socket
from tests.support.daemons import DaemonProcess, daemon_pair, fresh_vhost, sleep
from tests.support.services import fresh_database


async def _second_token(api: Api, name: str) -> str:
    status, body = await api.call("POST", "/api/auth/token",
                                  {"username": name, "password": "correct horse"})
    assert status == 200
    return str(body["token"])


async def _no_message(ws: Socket, seconds: float) -> None:
    """Nothing but typing frames arrive on the socket for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = await ws.next(timeout=max(0.05, deadline - time.monotonic()))
        except Exception:  # the time is up: nothing came
            return
        assert frame["type"] not in ("message", "typing"), frame


async def check_sign_out(api_a: Api, url_b: str) -> set[str]:
    """A socket on b of a token signed out on a closes 4001 within a second."""
    alice = await api_a.user()
    other = await _second_token(api_a, alice.name)
    doomed = [await Socket.open(url_b, alice.token, auth_frame=False),
              await Socket.open(url_b, alice.token)]
    spared = await Socket.open(url_b, other)
    started = time.monotonic()
    assert (await alice.call("DELETE", "/api/auth/token"))[0] == 204
    for ws in doomed:
        code, _ = await closed_within(ws, 1.0)
        assert code == 4001
    assert time.monotonic() - started < 1.0
    assert await still_open(spared, 0.3)  # another token of the same user
    assert (await api_a.call("GET", "/api/me", token=other))[0] == 200
    await spared.close()
    return {alice.token, other}


async def check_leave(api_a: Api, url_b: str) -> None:
    """A leave on a ends bob's subscription on b within a second; other chats go on."""
    alice, bob = await api_a.user(), await api_a.user()
    uri, kept = await alice.new_chat(), await alice.new_chat()
    for chat in (uri, kept):
        await bob.join(chat)
    ws = await Socket.open(url_b, bob.token)
    await ws.subscribe(uri)
    await ws.subscribe(kept)
    await alice.post(uri, "before")
    assert (await ws.next_of("message"))["message"] == "before"
    started = time.monotonic()
    assert (await bob.call("DELETE", f"/api/chats/{uri}/members/me"))[0] == 204
    frame = await ws.next_of("unsubscribed", timeout=1.0)
    assert frame == {"type": "unsubscribed", "chat": uri}
    assert time.monotonic() - started < 1.0
    await alice.post(uri, "bob must not see this")
    await alice.post(kept, "bob sees this")
    frame = await ws.next_of("message", timeout=5)
    assert (frame["chat"], frame["message"]) == (kept, "bob sees this")
    await _no_message(ws, 0.5)
    ws.send({"type": "subscribe", "chat": uri, "after": 0})
    assert (await ws.next_of("error"))["code"] == "forbidden"
    await ws.close()


@pytest_twisted.ensureDeferred
async def test_sign_out_and_leave_on_one_daemon(make_daemon: Any) -> None:
    daemon = await make_daemon()
    api = Api(daemon.base_url)
    await check_sign_out(api, daemon.base_url)
    await check_leave(api, daemon.base_url)


@pytest.fixture
def backing() -> Any:
    with fresh_database() as db, fresh_vhost() as (_vhost, amqp):
        yield db, amqp


@pytest_twisted.async_yield_fixture
async def two_daemons(backing: tuple[str, str], tmp_path: Path) -> AsyncIterator[Any]:
    db, amqp = backing
    async with daemon_pair(tmp_path, db, amqp) as pair:
        yield pair


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_sign_out_and_leave_across_daemons(two_daemons: list[DaemonProcess]) -> None:
    a, b = two_daemons
    await sleep(0.2)
    tokens = await check_sign_out(Api(a.base_url), b.base_url)
    await check_leave(Api(a.base_url), b.base_url)
    for daemon in (a, b):  # the revocation crossed the bus; no token went to a log
        await daemon.stop()
        assert_absent(daemon.log.read_text(errors="replace"), tokens)
