"""PROTOCOL.md's text rules over HTTP and the socket, on both stores: 400 `invalid`, never 5xx.

A lone surrogate ("\\ud800" in JSON), a NUL or another C0 control (tab and newline aside,
in a message only) and, in names, a bidirectional control are refused in every string
field; one user's such text never fails another user's post.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from chatire.text import Text, problem
from tests.support.client import Api, Socket

SURROGATE, NUL, BELL, CR = "\ud800", "\x00", "\x07", "\r"
BIDI = ["\u202a", "\u202e", "\u2066", "\u2069"]
#: Refused in every string field.
EVERYWHERE = [SURROGATE, NUL, BELL, CR, "\x1f"]


@pytest.mark.parametrize(("value", "kind", "ok"), [
    ("hello", Text.MESSAGE, True), ("a\tb\nc", Text.MESSAGE, True),
    ("😀 émoji 中文 \u200d", Text.MESSAGE, True), ("\u202e", Text.MESSAGE, True),
    ("a\tb", Text.NAME, False), ("a\nb", Text.PLAIN, False), ("\u202e", Text.PLAIN, True),
    *[(f"x{c}y", kind, False) for c in EVERYWHERE for kind in Text],
    *[(f"x{c}y", Text.NAME, False) for c in BIDI],
    ("\ud83d\ude00", Text.MESSAGE, False),  # a pair as two code points: not a str of JSON's
])
def test_the_rules(value: str, kind: Text, ok: bool) -> None:
    assert (problem(value, kind) is None) is ok


def _raw(body: dict[str, Any]) -> bytes:
    """The body as JSON with every non-ASCII character escaped (so "\\ud800" goes as is)."""
    return json.dumps(body).encode()


@pytest_twisted.ensureDeferred
async def test_accounts_and_titles_refuse_bad_text(api: Api) -> None:
    for bad in EVERYWHERE + BIDI:
        name = f"bad{bad}name"
        for body in ({"username": name, "password": "correct horse"},
                     {"username": "fine_name", "password": "correct horse",
                      "display_name": name}):
            status, reply = await api.call("POST", "/api/auth/register", raw=_raw(body))
            assert (status, reply["error"]["code"]) == (400, "invalid"), (body, reply)
    user = await api.user()
    for bad in EVERYWHERE:  # in a password: refused, not hashed
        status, reply = await api.call("POST", "/api/auth/register", raw=_raw(
            {"username": "u" + user.name, "password": f"correct horse{bad}"}))
        assert (status, reply["error"]["code"]) == (400, "invalid"), reply
    for bad in EVERYWHERE + BIDI:  # sign-in: no token, no argon2, no store
        for body in ({"username": f"{user.name}{bad}", "password": "correct horse"},
                     {"username": user.name, "password": f"correct horse{bad}"}):
            status, reply = await api.call("POST", "/api/auth/token", raw=_raw(body))
            assert status in (400, 401), (body, status, reply)
        status, reply = await user.call("POST", "/api/chats", raw=_raw({"title": f"t{bad}"}))
        assert (status, reply["error"]["code"]) == (400, "invalid"), reply
    status, _ = await api.call("POST", "/api/auth/token", raw=_raw(
        {"username": user.name, "password": "correct horse"}))
    assert status == 200  # the refused sign-ins counted for nothing


@pytest_twisted.ensureDeferred
async def test_messages_refuse_bad_text_and_keep_tab_and_newline(api: Api) -> None:
    user = await api.user()
    uri = await user.new_chat()
    path = f"/api/chats/{uri}/messages"
    for bad in EVERYWHERE:
        for body in ({"message": f"hi {bad} there"}, {"message": "hi", "client_id": f"k{bad}"}):
            status, reply = await user.call("POST", path, raw=_raw(body))
            assert (status, reply["error"]["code"]) == (400, "invalid"), (body, reply)
    status, reply = await user.call("POST", path, raw=_raw(
        {"message": "tab\there\nnew line \u202e 😀", "client_id": "k"}))
    assert status == 201, reply
    assert reply["message"]["message"] == "tab\there\nnew line \u202e 😀"
    status, reply = await user.call("GET", path)
    assert [m["seq"] for m in reply["messages"]] == [1]  # nothing else was stored
    status, reply = await user.call("GET", f"/api/chats/{NUL}x")
    assert status in (400, 404) and reply["error"]["code"] in ("invalid", "not_found")


@pytest_twisted.ensureDeferred
async def test_socket_frames_refuse_bad_text_and_stay_open(api: Api) -> None:
    user = await api.user()
    uri = await user.new_chat()
    ws = await Socket.open(api.base_url)
    for bad in (SURROGATE, NUL):
        ws.send(_raw({"type": "auth", "token": f"{user.token}{bad}"}).decode().encode())
        assert (await ws.next())["code"] == "invalid"
    ws.send({"type": "auth", "token": user.token})  # the same socket, still open
    assert (await ws.next())["type"] == "ready"
    await ws.subscribe(uri)
    for bad in EVERYWHERE:
        for frame in ({"type": "send", "chat": uri, "message": f"x{bad}", "client_id": "c1"},
                      {"type": "send", "chat": uri, "message": "x", "client_id": f"c{bad}"},
                      {"type": "subscribe", "chat": f"{uri}{bad}"},
                      {"type": "unsubscribe", "chat": f"{uri}{bad}"},
                      {"type": "typing", "chat": f"{uri}{bad}"}):
            ws.send(_raw(frame))
            error = await ws.next_of("error")
            assert error["code"] == "invalid", (frame, error)
            # Echoed only when it keeps the rules itself.
            assert error.get("client_id") in (None, "c1")
            assert "chat" not in error or error["chat"] == uri
    ws.send({"type": "send", "chat": uri, "message": "fine\tline\nnext", "client_id": "ok"})
    sent = await ws.next_of("sent")
    assert (sent["client_id"], sent["seq"]) == ("ok", 1)
    await ws.close()


@pytest_twisted.ensureDeferred
async def test_bad_text_never_fails_other_users_posts(api: Api) -> None:
    """The issue's case: honest posts beside bad ones, at once; all honest ones stored."""
    honest = [await api.user() for _ in range(4)]
    attacker = await api.user()
    uri = await honest[0].new_chat()
    for user in [*honest[1:], attacker]:
        await user.join(uri)
    path = f"/api/chats/{uri}/messages"
    calls = []
    for i in range(10):
        for n, user in enumerate(honest):
            calls.append(user.call("POST", path, {"message": f"h{n}-{i}",
                                                  "client_id": f"h{n}-{i}"}))
        calls.append(attacker.call("POST", path, raw=_raw(
            {"message": f"x{(SURROGATE, NUL)[i % 2]}", "client_id": f"a{i}"})))
    replies = await defer.gatherResults([defer.ensureDeferred(c) for c in calls])
    statuses = [status for status, _ in replies]
    assert statuses.count(201) == 40 and statuses.count(400) == 10, statuses
    _, reply = await honest[0].call("GET", f"{path}?limit=100")
    assert sorted(m["client_id"] for m in reply["messages"]) == sorted(
        f"h{n}-{i}" for n in range(4) for i in range(10))
    assert [m["seq"] for m in reply["messages"]] == list(range(5, 45))  # after 4 joins
