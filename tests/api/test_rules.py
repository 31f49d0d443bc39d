"""The API's rules and error mapping in memory: treq's StubTreq over the real resource and a
real SQLite store, no sockets (the real-socket suites cover the transport)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet import reactor

from chatire.config import Config
from chatire.jsonin import MAX_DEPTH
from chatire.testing import sleep

#: Small limits, so that crossing each one is cheap.
LIMITS = Config(db="", send_rate=0, login_failures=2, max_body_bytes=2048,
                max_message_chars=20)
PASSWORD = "correct horse battery"


class Reply:
    """One answer: status, headers, the parsed JSON body."""

    def __init__(self, code: int, headers: Any, body: Any) -> None:
        self.code, self.headers, self.body = code, headers, body

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return None if not values else str(values[0])

    @property
    def error(self) -> str:
        return str(self.body["error"]["code"])


class Client:
    """JSON calls through StubTreq, turning its in-memory transport until each is answered
    (the store answers from its thread, so the fake transport is flushed while waiting)."""

    def __init__(self, stub: StubTreq) -> None:
        self.stub: Any = stub  # its request methods are made at run time

    async def _wait(self, d: Any) -> Any:
        done: list[object] = []  # (d.called is true while d waits on another Deferred)

        def landed(result: object) -> object:
            done.append(result)
            return result

        d.addBoth(landed)
        while not done:
            self.stub.flush()
            await sleep(0.001)
        return await d

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None,
                   raw: bytes | None = None) -> Reply:
        headers = {b"Content-Type": [b"application/json"]}
        if token is not None:
            headers[b"Authorization"] = [f"Bearer {token}".encode()]
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        response = await self._wait(self.stub.request(method, "http://chatire.test" + path,
                                                      data=data, headers=headers))
        content = await self._wait(self.stub.content(response))
        return Reply(response.code, response.headers, json.loads(content) if content else None)

    async def user(self, name: str) -> str:
        """Sign up ``name`` and sign in: a token."""
        assert (await self.call("POST", "/api/auth/register",
                                {"username": name, "password": PASSWORD})).code == 201
        reply = await self.call("POST", "/api/auth/token",
                                {"username": name, "password": PASSWORD})
        assert reply.code == 200, reply.body
        return str(reply.body["token"])


@pytest_twisted.async_yield_fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    """The API resource on a real SQLite store, behind StubTreq.

    The one place the resource is built: the simplest wiring that works today
    (store, ChatService, ChatireAPI, in-memory bus); switch it to the daemon's
    composition root when there is one."""
    import attrs

    from chatire.api import ChatireAPI
    from chatire.auth import HashQueue, Passwords
    from chatire.bus import bus_from_url
    from chatire.chats import ChatService
    from chatire.service import default_web_root
    from chatire.store import store_from_url

    config = attrs.evolve(LIMITS, db=f"sqlite:///{tmp_path / 'rules.db'}")
    store = store_from_url(config.db, reactor)
    await store.start()
    chats = ChatService(store, config, reactor, Passwords(HashQueue(reactor)))
    api = ChatireAPI(chats, bus_from_url("memory://", reactor), reactor, default_web_root(),
                     max_body_bytes=config.max_body_bytes)
    yield Client(StubTreq(api.resource()))
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_errors_map_to_their_status_code_and_headers(client: Client) -> None:
    alice, bob = await client.user("alice"), await client.user("bob")
    chat = (await client.call("POST", "/api/chats", {"title": "t"}, alice)).body["chat"]["uri"]

    # 401: no token or a bad one, with the Bearer challenge; no-store on every answer.
    for token in (None, "not-a-token"):
        reply = await client.call("GET", "/api/me", token=token)
        assert (reply.code, reply.error) == (401, "unauthenticated")
        assert reply.header("WWW-Authenticate") == 'Bearer realm="chatire"'
        assert reply.header("Cache-Control") == "no-store"
    # 403: a non-member posts; 404: no such chat, no such path; 405: wrong method.
    reply = await client.call("POST", f"/api/chats/{chat}/messages", {"message": "hi"}, bob)
    assert (reply.code, reply.error) == (403, "forbidden")
    missing = "a" * len(chat)
    assert (await client.call("GET", f"/api/chats/{missing}", token=bob)).code == 404
    reply = await client.call("GET", "/api/nothing-here", token=bob)
    assert (reply.code, reply.error) == (404, "not_found")
    reply = await client.call("PUT", "/api/me", {}, bob)
    assert (reply.code, reply.error) == (405, "invalid")
    # 409: a taken name.
    reply = await client.call("POST", "/api/auth/register",
                              {"username": "alice", "password": PASSWORD})
    assert (reply.code, reply.error) == (409, "conflict")
    # 413: a body over --max-body-bytes; the same size minus one byte is only invalid.
    big = b'{"message":"' + b"x" * LIMITS.max_body_bytes + b'"}'
    reply = await client.call("POST", f"/api/chats/{chat}/messages", token=alice, raw=big)
    assert (reply.code, reply.error) == (413, "too_large")
    reply = await client.call("POST", f"/api/chats/{chat}/messages", token=alice,
                              raw=big[:LIMITS.max_body_bytes])
    assert (reply.code, reply.error) == (400, "invalid")
    # 429: past --login-failures wrong passwords, with a whole-second Retry-After.
    for _ in range(LIMITS.login_failures):
        reply = await client.call("POST", "/api/auth/token",
                                  {"username": "bob", "password": "wrong horse battery"})
        assert reply.code == 401
    reply = await client.call("POST", "/api/auth/token", {"username": "bob",
                                                         "password": PASSWORD})
    assert (reply.code, reply.error) == (429, "rate_limited")
    assert int(reply.header("Retry-After") or "0") >= 1


@pytest_twisted.ensureDeferred
async def test_json_depth_text_and_paging_rules(client: Client) -> None:
    alice = await client.user("alice")
    chat = (await client.call("POST", "/api/chats", {"title": "t"}, alice)).body["chat"]["uri"]
    path = f"/api/chats/{chat}/messages"

    # JSON: nesting up to MAX_DEPTH is parsed; one level deeper is invalid, never a 5xx.
    def nested(depth: int) -> bytes:
        return b'{"message":"hi","x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"

    assert (await client.call("POST", path, token=alice, raw=nested(MAX_DEPTH))).code < 500
    reply = await client.call("POST", path, token=alice, raw=nested(MAX_DEPTH + 1))
    assert (reply.code, reply.error) == (400, "invalid")
    for raw in (b"{", b"[]", b" ", b'{"message": 5}', b"\xff"):
        assert (await client.call("POST", path, token=alice, raw=raw)).code == 400, raw
    # Text rules: the length limit counts characters; control characters are refused.
    assert (await client.call("POST", path, {"message": "é" * 20}, alice)).code == 201
    assert (await client.call("POST", path, {"message": "é" * 21}, alice)).error == "invalid"
    assert (await client.call("POST", path, {"message": "a\x00b"}, alice)).error == "invalid"
    assert (await client.call("POST", path, {"message": "  "}, alice)).error == "invalid"
    # Paging: numbers in range only; a bad cursor is invalid, never a 5xx.
    for query in ("?limit=0", "?limit=x", "?before=-1", "?after=1e3", "?limit=100000"):
        reply = await client.call("GET", path + query, token=alice)
        assert (reply.code, reply.error) == (400, "invalid"), query
    reply = await client.call("GET", "/api/chats?cursor=%00nope", token=alice)
    assert (reply.code, reply.error) == (400, "invalid")
    reply = await client.call("GET", path + "?limit=1", token=alice)
    assert reply.code == 200 and reply.body["has_more"] is True
    assert reply.header("Cache-Control") == "no-store"


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/token"])
@pytest_twisted.ensureDeferred
async def test_account_bodies_follow_their_schema(client: Client, path: str) -> None:
    for body in ({}, {"username": "x"}, {"username": "ok_name", "password": 5},
                 {"username": ["ok_name"], "password": PASSWORD}):
        reply = await client.call("POST", path, body)
        assert (reply.code, reply.error) == (400, "invalid"), body
