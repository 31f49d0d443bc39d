"""The chat timeline over HTTP and the socket, on both stores: edit, delete, react, reply,
the raw events page, and who may do what."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest_twisted

from tests.support.client import Api, Socket, User

THUMBS = "\N{THUMBS UP SIGN}"


def _path(uri: str, seq: int, emoji: str | None = None) -> str:
    path = f"/api/chats/{uri}/messages/{seq}"
    return path if emoji is None else f"{path}/reactions/{quote(emoji, safe='')}"


async def _posted(user: User, uri: str, text: str, **extra: Any) -> dict[str, Any]:
    status, body = await user.call("POST", f"/api/chats/{uri}/messages",
                                   {"message": text, **extra})
    assert status == 201, body
    message: dict[str, Any] = body["message"]
    return message


async def _messages(user: User, uri: str) -> dict[int, dict[str, Any]]:
    status, body = await user.call("GET", f"/api/chats/{uri}/messages?limit=200")
    assert status == 200
    return {m["seq"]: m for m in body["messages"]}


async def _events(user: User, uri: str, after: int = 0, limit: int = 500) -> list[Any]:
    status, body = await user.call("GET", f"/api/chats/{uri}/events?after={after}&limit={limit}")
    assert status == 200, body
    events: list[Any] = body["events"]
    return events


async def _code(user: User, method: str, path: str, body: Any = None) -> tuple[int, str]:
    status, reply = await user.call(method, path, body)
    return status, (reply or {}).get("error", {}).get("code", "")


@pytest_twisted.ensureDeferred
async def test_edit_delete_react_reply_and_who_may(api: Api) -> None:
    alice, bob, eve = await api.user(), await api.user(), await api.user()
    uri = await alice.new_chat()  # alice owns it
    await bob.join(uri)  # seq 1: bob's join
    first = await _posted(bob, uri, "helo")  # seq 2
    assert (first["seq"], first["reply_to"], first["edited_at"], first["deleted"],
            first["reactions"]) == (2, None, None, False, [])

    # Edit: the author only, same text rules as a post; a deleted message is 409.
    status, body = await bob.call("PATCH", _path(uri, 2), {"message": " hello "})
    assert status == 200
    edit = body["event"]
    assert (edit["kind"], edit["target"], edit["message"], edit["seq"]) == ("edit", 2, "hello", 3)
    assert edit["user"]["id"] == bob.id and edit["edited_at"]
    assert await _code(alice, "PATCH", _path(uri, 2), {"message": "mine"}) == (403, "forbidden")
    assert await _code(bob, "PATCH", _path(uri, 99), {"message": "x"}) == (404, "not_found")
    assert await _code(bob, "PATCH", _path(uri, 1), {"message": "x"}) == (404, "not_found")
    assert await _code(bob, "PATCH", _path(uri, 2), {"message": "  "}) == (400, "invalid")
    assert await _code(eve, "PATCH", _path(uri, 2), {"message": "x"}) == (403, "forbidden")
    stored = (await _messages(alice, uri))[2]
    assert stored["message"] == "hello" and stored["edited_at"] == edit["edited_at"]

    # Reactions: PUT twice is one reaction; counts per emoji; members only; emoji rules.
    status, body = await alice.call("PUT", _path(uri, 2, THUMBS))
    assert status == 200 and (body["event"]["kind"], body["event"]["count"]) == ("react", 1)
    assert (await alice.call("PUT", _path(uri, 2, THUMBS)))[1] == {"event": None}
    status, body = await bob.call("PUT", _path(uri, 2, THUMBS))
    assert body["event"]["count"] == 2 and body["event"]["emoji"] == THUMBS
    await bob.call("PUT", _path(uri, 2, "ok"))
    reactions = (await _messages(alice, uri))[2]["reactions"]
    assert reactions == [{"emoji": THUMBS, "count": 2, "users": [alice.id, bob.id]},
                         {"emoji": "ok", "count": 1, "users": [bob.id]}]
    status, body = await alice.call("DELETE", _path(uri, 2, THUMBS))
    assert (body["event"]["kind"], body["event"]["count"]) == ("unreact", 1)
    assert (await alice.call("DELETE", _path(uri, 2, THUMBS)))[1] == {"event": None}
    assert await _code(eve, "PUT", _path(uri, 2, THUMBS)) == (403, "forbidden")
    for bad in ("x" * 33, "a b", "\N{NO-BREAK SPACE}", "tab\t"):
        assert await _code(alice, "PUT", _path(uri, 2, bad)) == (400, "invalid"), bad
    assert await _code(alice, "PUT", _path(uri, 77, THUMBS)) == (404, "not_found")

    # Replies: a message of this chat only (not an event's seq, not another chat's).
    other = await alice.new_chat()
    await _posted(alice, other, "elsewhere")
    last = (await _events(alice, uri))[-1]["seq"]
    reply = await _posted(alice, uri, "answer", reply_to=2)
    assert reply["reply_to"] == 2 and reply["seq"] == last + 1
    for bad_reply in (1, 99, 0):
        assert await _code(alice, "POST", f"/api/chats/{uri}/messages",
                           {"message": "x", "reply_to": bad_reply}) == (400, "invalid")

    # Delete: the author, or an admin/owner; a member may not delete another's message.
    assert await _code(bob, "DELETE", _path(uri, reply["seq"])) == (403, "forbidden")
    status, body = await alice.call("DELETE", _path(uri, 2))  # the owner deletes bob's
    assert status == 200
    gone = body["event"]
    assert (gone["kind"], gone["target"], gone["user"]["id"]) == ("delete", 2, alice.id)
    status, again = await bob.call("DELETE", _path(uri, 2))
    assert status == 200 and again["event"] == gone  # the first delete event, no new one
    assert await _code(bob, "PATCH", _path(uri, 2), {"message": "back"}) == (409, "conflict")
    assert await _code(bob, "PUT", _path(uri, 2, THUMBS)) == (409, "conflict")
    tomb = (await _messages(alice, uri))[2]
    assert (tomb["deleted"], tomb["message"], tomb["reactions"]) == (True, "", [])

    # The raw timeline: every seq once, in order, every kind; the edit's text is erased.
    events = await _events(bob, uri)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["kind"] for e in events] == ["join", "message", "edit", "react", "react",
                                           "react", "unreact", "message", "delete"]
    assert events[1]["deleted"] and events[2]["message"] == ""
    page = await _events(bob, uri, after=2, limit=3)
    assert [e["seq"] for e in page] == [3, 4, 5]
    status, body = await bob.call("GET", f"/api/chats/{uri}/events?after=2&limit=3")
    assert body["has_more"] is True
    for query in ("limit=0", "limit=501", "after=-1", "after=x"):
        assert await _code(bob, "GET", f"/api/chats/{uri}/events?{query}") == (400, "invalid")
    # Messages keep their own history call (messages only, seqs skip the other events).
    assert sorted(await _messages(bob, uri)) == [2, 8]


@pytest_twisted.ensureDeferred
async def test_socket_gets_every_kind_in_order_and_a_replay_shows_current_state(
        api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    watcher = await Socket.open(api.base_url, alice.token)
    await watcher.subscribe(uri, after=0)
    assert (await watcher.next())["kind"] == "join"
    ws = await Socket.open(api.base_url, bob.token)
    await ws.subscribe(uri)
    ws.send({"type": "send", "chat": uri, "message": "first", "client_id": "c1"})
    assert (await ws.next_of("sent"))["seq"] == 2  # a reply names a seq it was told
    ws.send({"type": "send", "chat": uri, "message": "re", "client_id": "c2", "reply_to": 2})
    assert (await ws.next_of("sent"))["seq"] == 3
    await bob.call("PATCH", _path(uri, 2), {"message": "first!"})
    await alice.call("PUT", _path(uri, 2, THUMBS))
    frames = [await watcher.next() for _ in range(4)]
    assert [(f["type"], f["seq"]) for f in frames] == [
        ("message", 2), ("message", 3), ("event", 4), ("event", 5)]
    assert frames[1]["reply_to"] == 2
    assert (frames[2]["kind"], frames[2]["message"]) == ("edit", "first!")
    assert (frames[3]["kind"], frames[3]["emoji"], frames[3]["count"]) == ("react", THUMBS, 1)
    # A replay shows the message as stored now; the events still follow in order.
    replay = await Socket.open(api.base_url, bob.token)
    await replay.subscribe(uri, after=1)
    again = [await replay.next() for _ in range(4)]
    assert [f["seq"] for f in again] == [2, 3, 4, 5]
    assert again[0]["message"] == "first!" and again[0]["edited_at"] is not None
    assert again[0]["reactions"] == [{"emoji": THUMBS, "count": 1, "users": [alice.id]}]
    for sock in (watcher, ws, replay):
        await sock.close()
