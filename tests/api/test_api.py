"""The HTTP API of PROTOCOL.md, over real HTTP, once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, threads

from chatire.api import ChatireAPI
from tests.support.client import Api

pytestmark = pytest.mark.usefixtures("daemon")


def _error(body: Any, code: str) -> None:
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_register_sign_in_me_and_sign_out(api: Api) -> None:
    status, body = await api.call("POST", "/api/auth/register",
                                  {"username": "Alice.B-1", "password": "longenough",
                                   "display_name": "Alice"})
    assert status == 201
    assert body == {"user": {"id": body["user"]["id"], "username": "Alice.B-1",
                             "display_name": "Alice"}}
    status, body = await api.call("POST", "/api/auth/register",
                                  {"username": "alice.b-1", "password": "otherpassword"})
    assert status == 409
    _error(body, "conflict")
    status, body = await api.call("POST", "/api/auth/token",
                                  {"username": "ALICE.B-1", "password": "longenough"})
    assert status == 200
    token = body["token"]
    assert len(token) >= 43 and body["user"]["username"] == "Alice.B-1"
    status, body = await api.call("GET", "/api/me", token=token)
    assert status == 200 and body["user"]["display_name"] == "Alice"
    status, _ = await api.call("DELETE", "/api/auth/token", token=token)
    assert status == 204
    status, body = await api.call("GET", "/api/me", token=token)
    assert status == 401
    _error(body, "unauthenticated")


@pytest.mark.parametrize("body, why", [
    ({"username": "", "password": "longenough"}, "empty name"),
    ({"username": "a b", "password": "longenough"}, "space"),
    ({"username": "bob\n", "password": "longenough"}, "newline"),
    ({"username": "x" * 151, "password": "longenough"}, "too long"),
    ({"username": "bob", "password": "short"}, "short password"),
    ({"username": "bob", "password": "p" * 1025}, "long password"),
    ({"username": "bob"}, "missing password"),
    ({"username": 5, "password": "longenough"}, "wrong type"),
    ([1, 2], "not an object"),
    ({"username": "bob", "password": "longenough", "display_name": 3}, "display type"),
])
@pytest_twisted.ensureDeferred
async def test_register_refuses_bad_input(api: Api, body: Any, why: str) -> None:
    status, reply = await api.call("POST", "/api/auth/register", body)
    assert status == 400, why
    _error(reply, "invalid")


@pytest_twisted.ensureDeferred
async def test_malformed_bodies_are_400_never_500(api: Api) -> None:
    for raw in (b"{", b"\xff\xfe", b"null", b'"text"', b"[]"):
        status, reply = await api.call("POST", "/api/auth/register", raw=raw)
        assert status == 400, raw
        _error(reply, "invalid")


@pytest_twisted.ensureDeferred
async def test_oversized_body_is_413_and_nothing_is_written(api: Api, daemon: Any) -> None:
    big = b'{"username": "big", "password": "longenough", "pad": "' + b"p" * 70000 + b'"}'
    status, reply = await api.call("POST", "/api/auth/register", raw=big)
    assert status == 413
    _error(reply, "too_large")
    # Also when the client lies about nothing and streams it chunked:
    port = daemon.ports[0].getHost().port

    def chunked() -> bytes:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /api/auth/register HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            for _ in range(20):
                s.sendall(b"1000\r\n" + b"a" * 4096 + b"\r\n")
            s.sendall(b"0\r\n\r\n")
            return b"".join(iter(lambda: s.recv(65536), b""))

    answer = await threads.deferToThread(chunked)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    status, _ = await api.call("POST", "/api/auth/token",
                               {"username": "big", "password": "longenough"})
    assert status == 401  # the refused registration stored nothing


@pytest_twisted.ensureDeferred
async def test_bad_credentials_and_tokens(api: Api) -> None:
    user = await api.user("carol", "rightpassword")
    status, body = await api.call("POST", "/api/auth/token",
                                  {"username": "carol", "password": "wrongpassword"})
    assert status == 401
    _error(body, "unauthenticated")
    status, body = await api.call("POST", "/api/auth/token",
                                  {"username": "nobody", "password": "whatever1"})
    assert status == 401
    for headers in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer"}):
        status, body = await api.call("GET", "/api/me", headers=headers)
        assert status == 401, headers
        _error(body, "unauthenticated")
    status, _ = await user.call("GET", "/api/me")
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_failed_sign_ins_are_rate_limited_per_username(api: Api) -> None:
    await api.user("dave", "rightpassword")
    await api.user("erin", "rightpassword")
    for _ in range(5):
        status, _ = await api.call("POST", "/api/auth/token",
                                   {"username": "dave", "password": "wrongpassword"})
        assert status == 401
    status, body = await api.call("POST", "/api/auth/token",
                                  {"username": "dave", "password": "rightpassword"})
    assert status == 429
    _error(body, "rate_limited")
    assert int(api.last_headers.getRawHeaders("Retry-After")[0]) >= 1
    status, _ = await api.call("POST", "/api/auth/token",
                               {"username": "erin", "password": "rightpassword"})
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_chats_members_and_membership_rules(api: Api) -> None:
    owner, friend, stranger = await defer.gatherResults(
        [defer.ensureDeferred(api.user()) for _ in range(3)])
    status, body = await owner.call("POST", "/api/chats", {"title": "Lunch"})
    assert status == 201
    chat = body["chat"]
    uri = chat["uri"]
    assert len(uri) >= 22 and re.fullmatch(r"[A-Za-z0-9_-]+", uri)
    assert chat["title"] == "Lunch" and chat["last_seq"] == 0
    assert chat["owner"]["id"] == owner.id and chat["created_at"].endswith("Z")
    status, body = await owner.call("POST", "/api/chats", {"title": "x" * 201})
    assert status == 400
    status, body = await owner.call("POST", "/api/chats")
    assert status == 201 and body["chat"]["title"] == ""
    second = body["chat"]["uri"]

    status, body = await stranger.call("GET", f"/api/chats/{uri}")
    assert status == 403
    _error(body, "forbidden")
    status, body = await stranger.call("GET", "/api/chats/doesnotexist")
    assert status == 404
    _error(body, "not_found")
    for _ in range(2):  # joining is idempotent
        status, body = await friend.call("POST", f"/api/chats/{uri}/members")
        assert status == 200 and body["chat"]["uri"] == uri
    status, body = await friend.call("GET", f"/api/chats/{uri}")
    assert status == 200
    assert [m["id"] for m in body["members"]] == [owner.id, friend.id]
    assert all(set(m) == {"id", "username", "display_name", "role", "read_seq", "online",
                          "last_seen"} for m in body["members"])
    assert [m["role"] for m in body["members"]] == ["owner", "member"]

    await owner.post(second, "newer activity")
    status, body = await owner.call("GET", "/api/chats")
    assert [c["uri"] for c in body["chats"]] == [second, uri]
    await owner.post(uri, "now this one")
    status, body = await owner.call("GET", "/api/chats")
    assert [c["uri"] for c in body["chats"]] == [uri, second]

    status, _ = await friend.call("DELETE", f"/api/chats/{uri}/members/me")
    assert status == 204
    status, _ = await friend.call("GET", f"/api/chats/{uri}")
    assert status == 403
    status, body = await friend.call("POST", f"/api/chats/{uri}/messages", {"message": "hi"})
    assert status == 403
    status, body = await friend.call("GET", f"/api/chats/{uri}/messages")
    assert status == 403
    status, body = await friend.call("GET", "/api/chats")
    assert body["chats"] == []


@pytest_twisted.ensureDeferred
async def test_post_is_idempotent_on_client_id(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    status, first = await alice.call("POST", f"/api/chats/{uri}/messages",
                                     {"message": "  hello  ", "client_id": "c-1"})
    assert status == 201
    message = first["message"]
    assert message["message"] == "hello" and message["seq"] == 2  # bob's join is 1
    assert message["client_id"] == "c-1" and message["user"]["id"] == alice.id
    status, again = await alice.call("POST", f"/api/chats/{uri}/messages",
                                     {"message": "different text", "client_id": "c-1"})
    assert status == 200 and again["message"] == message
    status, other = await bob.call("POST", f"/api/chats/{uri}/messages",
                                   {"message": "same key, other user", "client_id": "c-1"})
    assert status == 201 and other["message"]["seq"] == 3
    status, body = await alice.call("GET", f"/api/chats/{uri}/messages")
    assert [m["seq"] for m in body["messages"]] == [2, 3]


@pytest.mark.parametrize("text", ["", "   \n\t ", "x" * 4001])
@pytest_twisted.ensureDeferred
async def test_message_length_rules(api: Api, text: str) -> None:
    alice = await api.user()
    uri = await alice.new_chat()
    status, body = await alice.call("POST", f"/api/chats/{uri}/messages", {"message": text})
    assert status == 400
    _error(body, "invalid")
    status, body = await alice.call("POST", f"/api/chats/{uri}/messages",
                                    {"message": " " + "y" * 4000 + " "})
    assert status == 201 and body["message"]["seq"] == 1


@pytest_twisted.ensureDeferred
async def test_history_pages_by_after_before_and_limit(api: Api) -> None:
    alice = await api.user()
    uri = await alice.new_chat()
    for i in range(1, 8):
        await alice.post(uri, f"m{i}")

    async def page(query: str) -> tuple[list[int], bool]:
        status, body = await alice.call("GET", f"/api/chats/{uri}/messages{query}")
        assert status == 200, body
        return [m["seq"] for m in body["messages"]], body["has_more"]

    assert await page("") == ([1, 2, 3, 4, 5, 6, 7], False)
    assert await page("?limit=3") == ([5, 6, 7], True)
    assert await page("?before=5&limit=3") == ([2, 3, 4], True)
    assert await page("?before=4&limit=3") == ([1, 2, 3], False)
    assert await page("?after=0&limit=3") == ([1, 2, 3], True)
    assert await page("?after=4&limit=3") == ([5, 6, 7], False)
    assert await page("?after=7") == ([], False)
    for bad in ("?limit=0", "?limit=201", "?after=-1", "?before=0", "?after=x",
                "?after=1&before=3"):
        status, body = await alice.call("GET", f"/api/chats/{uri}/messages{bad}")
        assert status == 400, bad
        _error(body, "invalid")


@pytest_twisted.ensureDeferred
async def test_unknown_paths_and_methods_are_json_errors(api: Api) -> None:
    status, body = await api.call("GET", "/api/nothing-here")
    assert status == 404
    _error(body, "not_found")
    status, body = await api.call("PUT", "/api/me")
    assert status == 405


@pytest_twisted.ensureDeferred
async def test_healthz(api: Api) -> None:
    status, body = await api.call("GET", "/healthz")
    assert (status, body) == (200, {"store": "ok", "bus": "ok"})


@pytest_twisted.ensureDeferred
async def test_openapi_documents_every_route(api: Api) -> None:
    status, spec = await api.call("GET", "/api/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    served = set()
    for rule in ChatireAPI.router._url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if path in ("/", "/{__rest__}", "/c/{uri}", "/i/{code}", "/ws"):
            continue  # the UI's files and the WebSocket upgrade
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    assert served and served <= documented, served - documented


@pytest_twisted.ensureDeferred
async def test_chat_list_carries_each_chats_last_message(api: Api) -> None:
    owner, friend = await api.user(), await api.user()
    busy, empty = await owner.new_chat("busy"), await owner.new_chat("empty")
    await friend.join(busy)
    await owner.post(busy, "first")
    await friend.post(busy, "  the latest  ")
    status, body = await friend.call("GET", "/api/chats")
    assert status == 200
    [chat] = body["chats"]
    last = chat["last_message"]
    assert set(last) == {"user", "message", "created_at"}
    assert last["message"] == "the latest" and last["user"]["id"] == friend.id
    assert set(last["user"]) == {"id", "username", "display_name"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", last["created_at"])
    status, body = await owner.call("GET", "/api/chats")
    by_uri = {c["uri"]: c for c in body["chats"]}
    assert by_uri[busy]["last_message"] == last
    assert by_uri[empty]["last_message"] is None  # no message yet: null, not missing
    # The preview belongs to the list: a single chat's object stays as it was.
    status, body = await owner.call("GET", f"/api/chats/{busy}")
    assert "last_message" not in body["chat"]
