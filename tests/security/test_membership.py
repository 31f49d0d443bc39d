"""Only members read, post or subscribe: every route and frame refused for a non-member."""

from __future__ import annotations

import time
from typing import Any

import pytest_twisted

from chatire.schemas import FRAMES
from tests.support.client import Api, Socket, fill_path

#: What a signed-in non-member gets from each operation on a chat's uri.
REFUSED = {
    ("get", "/api/chats/{uri}", ""): 403,
    ("get", "/api/chats/{uri}/messages", ""): 403,
    ("get", "/api/chats/{uri}/messages", "?after=0"): 403,
    ("get", "/api/chats/{uri}/messages", "?before=2&limit=200"): 403,
    ("post", "/api/chats/{uri}/messages", ""): 403,
    ("patch", "/api/chats/{uri}/messages/{seq}", ""): 403,
    ("delete", "/api/chats/{uri}/messages/{seq}", ""): 403,
    ("put", "/api/chats/{uri}/messages/{seq}/reactions/{emoji}", ""): 403,
    ("delete", "/api/chats/{uri}/messages/{seq}/reactions/{emoji}", ""): 403,
    ("get", "/api/chats/{uri}/events", ""): 403,
    ("get", "/api/chats/{uri}/events", "?after=0&limit=500"): 403,
    ("put", "/api/chats/{uri}/read", ""): 403,
    ("patch", "/api/chats/{uri}", ""): 403,
    ("delete", "/api/chats/{uri}", ""): 403,
    ("delete", "/api/chats/{uri}/members/{user_id}", ""): 403,
    ("delete", "/api/chats/{uri}/members/{user_id}", "?ban=1"): 403,
    ("put", "/api/chats/{uri}/members/{user_id}/role", ""): 403,
    ("delete", "/api/chats/{uri}/bans/{user_id}", ""): 403,
    ("post", "/api/chats/{uri}/invites", ""): 403,
    ("get", "/api/chats/{uri}/invites", ""): 403,
    ("delete", "/api/chats/{uri}/invites/{code}", ""): 403,
    ("get", "/api/chats/{uri}/notifications", ""): 403,
    ("put", "/api/chats/{uri}/notifications", ""): 403,
}
#: Operations on a uri a non-member may call, and why.
ALLOWED = {
    # Knowing the uri is the invitation (PROTOCOL.md): anyone signed in may join.
    ("post", "/api/chats/{uri}/members"): 200,
    # Leaving a chat one is not in changes nothing (idempotent, like join).
    ("delete", "/api/chats/{uri}/members/me"): 204,
}
BODIES = {("post", "/api/chats/{uri}/messages"): {"message": "let me in", "client_id": "s1"},
          ("patch", "/api/chats/{uri}/messages/{seq}"): {"message": "mine now"},
          ("put", "/api/chats/{uri}/read"): {"seq": 1},
          ("put", "/api/chats/{uri}/notifications"): {"level": "all"},
          ("patch", "/api/chats/{uri}"): {"title": "mine"},
          ("put", "/api/chats/{uri}/members/{user_id}/role"): {"role": "admin"}}


async def _setup(api: Api) -> tuple[Any, Any, Any, str]:
    alice, bob, stranger = await api.user(), await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    await alice.post(uri, "members only")  # seq 2 (bob's join is seq 1)
    await stranger.new_chat("the stranger's own")  # a member of another chat
    return alice, bob, stranger, uri


async def _state(alice: Any, uri: str) -> tuple[int, list[int]]:
    status, body = await alice.call("GET", f"/api/chats/{uri}")
    assert status == 200
    return body["chat"]["last_seq"], sorted(m["id"] for m in body["members"])


@pytest_twisted.ensureDeferred
async def test_every_route_on_a_chat_is_refused_to_a_non_member(make_daemon: Any) -> None:
    daemon = await make_daemon()
    api = Api(daemon.base_url)
    alice, bob, stranger, uri = await _setup(api)
    before = await _state(alice, uri)
    status, spec = await api.call("GET", "/api/openapi.json")
    on_uri = {(m, p) for p, ops in spec["paths"].items() for m in ops if "{uri}" in p}
    covered = {(m, p) for m, p, _ in REFUSED} | set(ALLOWED)
    assert on_uri == covered, f"decide what a non-member gets from {on_uri - covered}"
    for (method, path, query), expected in REFUSED.items():
        for who, target, code in ((stranger, uri, expected), (stranger, "no-such-chat", 404)):
            status, body = await who.call(method.upper(), fill_path(path, target) + query,
                                          BODIES.get((method, path)))
            assert status == code, (method, path, query, target, status, body)
            assert body["error"]["code"] == {403: "forbidden", 404: "not_found"}[code]
            assert "members only" not in str(body)
    # The rest of the API tells the stranger nothing about the chat.
    for path in ("/api/chats", "/api/me"):
        status, body = await stranger.call("GET", path)
        assert status == 200 and uri not in str(body), path
    # A leave by a non-member changes nothing; after all that the chat is as it was.
    assert (await stranger.call("DELETE", f"/api/chats/{uri}/members/me"))[0] == 204
    assert await _state(alice, uri) == before
    # An ex-member is a non-member again.
    assert (await bob.call("DELETE", f"/api/chats/{uri}/members/me"))[0] == 204
    for (method, path, query), expected in REFUSED.items():
        status, _ = await bob.call(method.upper(), fill_path(path, uri) + query,
                                   BODIES.get((method, path)))
        assert status == expected, (method, path, "ex-member")
    # Joining is the invitation: then the stranger is a member like any other.
    assert (await stranger.call("POST", f"/api/chats/{uri}/members"))[0] == 200
    assert (await stranger.call("GET", f"/api/chats/{uri}/messages"))[0] == 200
    # Removed and banned: a non-member again, and the link no longer lets them in.
    status, _ = await alice.call("DELETE", f"/api/chats/{uri}/members/{stranger.id}?ban=1")
    assert status == 204
    for (method, path, query), expected in REFUSED.items():
        status, _ = await stranger.call(method.upper(), fill_path(path, uri) + query,
                                        BODIES.get((method, path)))
        assert status == expected, (method, path, "removed")
    assert (await stranger.call("POST", f"/api/chats/{uri}/members"))[0] == 403


#: The frames a non-member may send about a chat, and what each gets.
FRAME_REPLIES = {
    "subscribe": [({"after": None}, "forbidden"), ({"after": 0}, "forbidden"),
                  ({"after": 1}, "forbidden")],
    "send": [({"message": "let me in", "client_id": "s1"}, "forbidden"),
             ({"message": "no client id"}, "forbidden")],
    "read": [({"seq": 1}, "forbidden")],
    "typing": [({}, "invalid")],  # only a subscriber may type, and it cannot subscribe
    "unsubscribe": [({}, "unsubscribed")],  # a no-op: it followed nothing
}


@pytest_twisted.ensureDeferred
async def test_every_frame_on_a_chat_is_refused_to_a_non_member(make_daemon: Any) -> None:
    daemon = await make_daemon()
    api = Api(daemon.base_url)
    alice, _bob, stranger, uri = await _setup(api)
    assert set(FRAMES) - {"auth"} == set(FRAME_REPLIES)
    before = await _state(alice, uri)
    watcher = await Socket.open(daemon.base_url, alice.token)
    await watcher.subscribe(uri, after=before[0])
    ws = await Socket.open(daemon.base_url, stranger.token)
    for kind, cases in FRAME_REPLIES.items():
        for target, not_there in ((uri, None), ("no-such-chat", "not_found")):
            for extra, expected in cases:
                ws.send({"type": kind, "chat": target, **extra})
                reply = await ws.next()
                if expected == "unsubscribed":
                    assert reply == {"type": "unsubscribed", "chat": target}
                    continue
                assert reply["type"] == "error", (kind, target, reply)
                code = not_there if (not_there and expected == "forbidden") else expected
                assert (reply["code"], reply["chat"]) == (code, target), (kind, reply)
    assert daemon.hub.subscription_count() == 1  # the watcher's, not the stranger's
    # Members saw nothing of it: no message, no typing; the chat did not change.
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        try:
            frame = await watcher.next(timeout=0.1)
        except Exception:
            continue
        raise AssertionError(f"a member got {frame}")
    assert await _state(alice, uri) == before
    await ws.close()
    await watcher.close()
