"""No token or password in any log line: the daemon's whole log is searched for every one used."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq

from tests.security.helpers import closed_within, open_ws
from tests.support.client import Api, Socket
from tests.support.daemons import DaemonProcess


def assert_absent(log: str, secrets: set[str]) -> None:
    """Neither a secret nor its SHA-256 (a token's stored form) appears in the log."""
    assert log.strip(), "the daemon wrote no log at all"
    for secret in secrets:
        for form in (secret, hashlib.sha256(secret.encode()).hexdigest()):
            lines = [line for line in log.splitlines() if form in line]
            assert not lines, f"a secret in the log: {lines[:2]}"


async def exercise(base_url: str) -> set[str]:
    """Use every way a token or password reaches the daemon, rightly and wrongly."""
    secrets: set[str] = set()
    api = Api(base_url)
    password = "s3cret-password-do-not-log"
    alice = await api.user(password=password)
    bob = await api.user(password="bobs-own-secret-pw")
    secrets |= {password, "bobs-own-secret-pw", alice.token, bob.token}
    uri = await alice.new_chat()
    await bob.join(uri)
    for wrong in ("wrong-password-1", "wrong-password-2"):
        status, _ = await api.call("POST", "/api/auth/token",
                                   {"username": alice.name, "password": wrong})
        assert status == 401
        secrets.add(wrong)
    status, _ = await api.call("POST", "/api/auth/token",
                               {"username": "nobody-here", "password": "ghost-password"})
    secrets.add("ghost-password")
    status, _ = await api.call("POST", "/api/auth/register",
                               {"username": "bad name!", "password": "short-but-secret"})
    assert status == 400
    secrets.add("short-but-secret")
    status, _ = await api.call("POST", "/api/auth/register",
                               {"username": alice.name, "password": "taken-name-secret"})
    assert status == 409
    secrets.add("taken-name-secret")
    forged = "forged-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    secrets.add(forged)
    for path in ("/api/me", f"/api/chats/{uri}", "/api/nowhere"):
        await api.call("GET", path, headers={"Authorization": f"Bearer {forged}"})
    await api.call("POST", f"/api/chats/{uri}/messages", {"message": "hi"},
                   headers={"Authorization": f"Bearer {forged}"})
    await api.call("GET", "/api/me", raw=b"{", headers={"Authorization": f"Bearer {forged}"})
    # Sockets: header, frame, forged, a token in a refused frame.
    ws = await Socket.open(base_url, alice.token, auth_frame=False)
    await ws.subscribe(uri)
    ws.send({"type": "send", "chat": uri, "message": "hello", "client_id": "c1"})
    await ws.next_of("sent")
    ws.send({"type": "auth", "token": alice.token})  # again: refused, not logged
    await ws.next_of("error")
    ws.send({"type": "subscribe", "chat": forged, "after": None, "token": forged})
    await ws.next_of("error")
    ws2 = await Socket.open(base_url, bob.token)
    await ws2.subscribe(uri)
    bad = await open_ws(base_url, {"Authorization": f"Bearer {forged}"})
    await closed_within(bad, 3)
    bad = await open_ws(base_url)
    bad.send({"type": "auth", "token": forged})
    await closed_within(bad, 3)
    bad = await open_ws(base_url)
    bad.send(b'{"type": "auth", "token": "' + forged.encode() + b'", broken')
    await bad.next()
    await bad.close()
    # Invites, removal, a ban, a direct chat and a deleted chat: no code or uri logged.
    secrets.add(uri)
    status, body = await alice.call("POST", f"/api/chats/{uri}/invites", {"max_uses": 1})
    assert status == 201
    code = body["invite"]["code"]
    secrets.add(code)
    carol = await api.user(password="carols-secret-pw")
    secrets |= {"carols-secret-pw", carol.token}
    assert (await carol.call("GET", f"/api/invites/{code}"))[0] == 200
    page = await treq.get(f"{base_url}/i/{code}", persistent=False)
    assert page.code == 200 and b"<html" in (await page.content()).lower()
    assert (await carol.call("POST", f"/api/invites/{code}"))[0] == 200
    assert (await bob.call("POST", f"/api/invites/{code}"))[0] == 404  # used up
    await alice.call("DELETE", f"/api/chats/{uri}/invites/{code}")
    forged_code = "forged-invite-code-BBBBBBBBBBBB"
    secrets.add(forged_code)
    assert (await carol.call("POST", f"/api/invites/{forged_code}"))[0] == 404
    assert (await alice.call("DELETE", f"/api/chats/{uri}/members/{carol.id}?ban=1"))[0] == 204
    status, body = await carol.call("POST", "/api/direct", {"username": alice.name})
    secrets.add(body["chat"]["uri"])
    other = await alice.new_chat()
    secrets.add(other)
    assert (await alice.call("DELETE", f"/api/chats/{other}"))[0] == 204
    # Sign out (closes alice's socket), then use the revoked token.
    assert (await alice.call("DELETE", "/api/auth/token"))[0] == 204
    await closed_within(ws, 3)
    assert (await alice.call("GET", "/api/me"))[0] == 401
    await ws2.close()
    return secrets


@pytest_twisted.async_yield_fixture
async def daemon_of(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[DaemonProcess] = []

    async def start(*options: str) -> DaemonProcess:
        d = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / f'l{len(started)}.db'}",
                          "memory://", *options, name=f"log{len(started)}")
        started.append(d)
        await d.start()
        return d

    yield start
    for d in started:
        await d.stop()


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest_twisted.ensureDeferred
async def test_no_token_or_password_in_the_daemon_log(daemon_of: Any, log_format: str) -> None:
    daemon = await daemon_of("--log-format", log_format, "--login-failures", "2")
    secrets = await exercise(daemon.base_url)
    await daemon.stop()  # flushes the log, and logs the shutdown
    log = daemon.log.read_text(errors="replace")
    assert "POST /api/auth/token" in log or "/api/auth/token" in log  # access lines are there
    assert_absent(log, secrets)
