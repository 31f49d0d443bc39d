"""Missing, garbage, expired and revoked tokens: refused on every HTTP route and on the socket."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from tests.security.helpers import closed_within, open_ws
from tests.support.client import Api, fill_path
from tests.support.daemons import sleep

#: A valid body for each route that takes one, so only the token decides.
BODIES = {
    ("post", "/api/chats"): {"title": "t"},
    ("post", "/api/chats/{uri}/messages"): {"message": "hello", "client_id": "c1"},
}


async def authenticated_routes(api: Api) -> list[tuple[str, str]]:
    """(method, path) of every operation of the OpenAPI document that needs a token."""
    status, spec = await api.call("GET", "/api/openapi.json")
    assert status == 200
    routes = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if operation.get("security", spec.get("security")) != []:
                routes.append((method, path))
    assert len(routes) >= 9, routes
    return routes


async def assert_refused_everywhere(api: Api, uri: str, headers: dict[str, str],
                                    what: str) -> None:
    for method, path in await authenticated_routes(api):
        status, body = await api.call(method.upper(), fill_path(path, uri),
                                      BODIES.get((method, path)), headers=headers)
        assert status == 401, (what, method, path, status, body)
        assert body["error"]["code"] == "unauthenticated"
        assert api.last_headers.getRawHeaders("www-authenticate") == ['Bearer realm="chatire"']


async def assert_socket_refused(base_url: str, token: str, what: str) -> None:
    try:
        ws = await open_ws(base_url, {"Authorization": f"Bearer {token}"})
    except ConnectionError as e:  # a header HTTP itself refuses: no socket at all
        assert "[400]" in str(e), (what, e)
    else:
        error = await ws.next()
        assert error["code"] == "unauthenticated", (what, error)
        assert (await closed_within(ws, 2))[0] == 4001, what
    ws = await open_ws(base_url)
    ws.send({"type": "auth", "token": token})
    assert (await ws.next())["code"] == "unauthenticated", what
    assert (await closed_within(ws, 2))[0] == 4001, what


@pytest_twisted.ensureDeferred
async def test_missing_and_garbage_tokens(make_daemon: Any) -> None:
    daemon = await make_daemon(auth_timeout=0.5)
    api = Api(daemon.base_url)
    alice = await api.user()
    uri = await alice.new_chat()
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer "}, {"Authorization": "Basic YTpi"},
                    {"Authorization": f"Token {alice.token}"},
                    {"Authorization": f"Bearer {alice.token}x"},
                    {"Authorization": f"Bearer {alice.token[:-1]}"},
                    {"Authorization": "Bearer \u00e9\u00e9"},
                    {"Authorization": "Bearer " + "A" * 5000}):
        await assert_refused_everywhere(api, uri, headers, repr(headers)[:40])
    # A token holding NUL breaks the text rule of every string field: an `invalid` error
    # frame (tests/security/test_text.py), not a bad token.
    for token in ("garbage", alice.token + "x", " ", "A" * 5000):
        await assert_socket_refused(daemon.base_url, token, repr(token)[:20])
    # No token at all on the socket: refused frames, then 4001 when the time is up.
    ws = await open_ws(daemon.base_url)
    for frame in ({"type": "subscribe", "chat": uri, "after": None},
                  {"type": "send", "chat": uri, "message": "x", "client_id": "a"},
                  {"type": "typing", "chat": uri}, {"type": "unsubscribe", "chat": uri}):
        ws.send(frame)
        assert (await ws.next())["code"] == "unauthenticated", frame
    assert (await closed_within(ws, 2))[0] == 4001
    _, body = await alice.call("GET", f"/api/chats/{uri}")
    assert body["chat"]["last_seq"] == 0


@pytest_twisted.ensureDeferred
async def test_expired_tokens(make_daemon: Any) -> None:
    daemon = await make_daemon(token_lifetime=1)
    api = Api(daemon.base_url)
    alice = await api.user()
    uri = await alice.new_chat()
    assert (await alice.call("GET", "/api/me"))[0] == 200
    await sleep(1.5)
    await assert_refused_everywhere(api, uri, {"Authorization": f"Bearer {alice.token}"},
                                    "expired")
    await assert_socket_refused(daemon.base_url, alice.token, "expired")
    status, body = await api.call("POST", "/api/auth/token",
                                  {"username": alice.name, "password": "correct horse"})
    assert status == 200 and body["token"] != alice.token  # signing in again works


@pytest_twisted.ensureDeferred
async def test_revoked_tokens(make_daemon: Any) -> None:
    daemon = await make_daemon()
    api = Api(daemon.base_url)
    alice = await api.user()
    uri = await alice.new_chat()
    _, other = await api.call("POST", "/api/auth/token",
                              {"username": alice.name, "password": "correct horse"})
    assert (await alice.call("DELETE", "/api/auth/token"))[0] == 204
    await assert_refused_everywhere(api, uri, {"Authorization": f"Bearer {alice.token}"},
                                    "revoked")
    await assert_socket_refused(daemon.base_url, alice.token, "revoked")
    assert (await alice.call("DELETE", "/api/auth/token"))[0] == 401  # not twice
    # Signing out revoked that token only: the user's other token still works.
    status, _ = await api.call("GET", "/api/me", token=other["token"])
    assert status == 200
