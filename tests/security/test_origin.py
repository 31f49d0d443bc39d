"""Origin checks on the socket upgrade, with token auth and never a cookie."""

from __future__ import annotations

from typing import Any

import pytest_twisted
import treq

from tests.security.helpers import closed_within, open_ws, refused
from tests.support.client import Api


@pytest_twisted.ensureDeferred
async def test_foreign_and_null_origins_are_refused_even_with_a_good_token(
        make_daemon: Any) -> None:
    daemon = await make_daemon(allowed_origin=("https://chat.example",))
    alice = await Api(daemon.base_url).user()
    bearer = {"Authorization": f"Bearer {alice.token}"}
    for origin in ("http://evil.example", "null", "https://chat.example.evil.example",
                   "http://chat.example", "https://chat.example:444", "file://"):
        for headers in (bearer, {}):
            error = await refused(daemon.base_url, headers=headers, origin=origin)
            assert "403" in error or "closed" in error, (origin, error)
    assert daemon.sockets.open_count == 0


@pytest_twisted.ensureDeferred
async def test_own_listed_and_missing_origins_are_judged_by_the_token(
        make_daemon: Any) -> None:
    daemon = await make_daemon(allowed_origin=("https://chat.example",), auth_timeout=0.5)
    alice = await Api(daemon.base_url).user()
    for origin in (daemon.base_url, "https://chat.example", "HTTPS://CHAT.EXAMPLE/", None):
        ws = await open_ws(daemon.base_url, {"Authorization": f"Bearer {alice.token}"},
                           origin=origin)
        assert (await ws.next())["type"] == "ready"
        await ws.close()
        ws = await open_ws(daemon.base_url, origin=origin)  # auth frame, as a browser
        ws.send({"type": "auth", "token": alice.token})
        assert (await ws.next())["type"] == "ready"
        await ws.close()
        ws = await open_ws(daemon.base_url, {"Authorization": "Bearer forged"},
                           origin=origin)
        assert (await ws.next())["code"] == "unauthenticated"
        assert (await closed_within(ws, 2))[0] == 4001


@pytest_twisted.ensureDeferred
async def test_a_cookie_alone_authenticates_nothing(make_daemon: Any) -> None:
    daemon = await make_daemon(auth_timeout=0.5)
    api = Api(daemon.base_url)
    alice = await api.user()
    cookies = {"Cookie": f"token={alice.token}; session={alice.token}; "
                         f"Authorization=Bearer {alice.token}"}
    for origin in (None, daemon.base_url):
        ws = await open_ws(daemon.base_url, cookies, origin=origin)
        ws.send({"type": "subscribe", "chat": "anything", "after": None})
        assert (await ws.next())["code"] == "unauthenticated"
        assert (await closed_within(ws, 2))[0] == 4001
    status, body = await api.call("GET", "/api/me", headers=cookies)
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    # A token in the URL is not a way in either.
    status, _ = await api.call("GET", f"/api/me?token={alice.token}")
    assert status == 401
    ws = await open_ws(daemon.base_url, path=f"/ws?token={alice.token}")
    ws.send({"type": "subscribe", "chat": "anything", "after": None})
    assert (await ws.next())["code"] == "unauthenticated"
    await ws.close()


@pytest_twisted.ensureDeferred
async def test_a_null_origin_is_refused_with_403_not_400(make_daemon: Any) -> None:
    daemon = await make_daemon()
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    for origin, status in (("null", 403), ("http://evil.example", 403)):
        response = await treq.get(daemon.base_url + "/ws", persistent=False,
                                  headers={**upgrade, "Origin": origin})
        await response.content()
        assert response.code == status, origin
    assert daemon.sockets.open_count == 0
