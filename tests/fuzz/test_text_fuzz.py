"""Hostile text in every text field of every request body and frame, on both stores.

PROTOCOL.md (Abuse limits: Text): a lone surrogate is 400 ``invalid`` in any text field,
and so is a C0 control (but tab and newline in a message); names also refuse the
bidirectional controls. On the socket the refusal is an ``invalid`` error frame and the
socket stays open. Never a 5xx, never a frame without its reply, and one user's bad post
never fails another's that shared its group commit.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz import rawws
from tests.fuzz.conftest import EXPLORE, PASSWORD, Member, SyncDaemon, unlimited, valid_value
from tests.fuzz.strategies import (
    api_text_fields,
    frame_text_fields,
    hostile_names,
    hostile_text,
    name_refusals,
    text_refused,
)
from tests.support.client import fill_path
from tests.support.services import fresh_database

FUZZ = settings(max_examples=50, deadline=None, database=None, derandomize=not EXPLORE,
                suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_daemon(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncDaemon]:
    """A daemon on each store, every per-user limit off."""
    workdir = tmp_path_factory.mktemp(f"text-{request.param}")
    with ExitStack() as stack:
        url = (f"sqlite:///{workdir / 'fuzz.db'}" if request.param == "sqlite"
               else stack.enter_context(fresh_database()))
        daemon = SyncDaemon(workdir, url, "memory://", *unlimited(), "--max-frame-bytes",
                            "16384", name=f"text-{request.param}")
        daemon.start()
        stack.callback(daemon.stop)
        yield daemon


@pytest.fixture(scope="module")
def member(store_daemon: SyncDaemon) -> Member:
    return Member(store_daemon)


FIELDS = list(api_text_fields())


def test_every_text_field_is_fuzzed() -> None:
    """The fields come from the OpenAPI document: a new one is fuzzed (or fails) at once."""
    assert {(path, field) for _, path, field, _ in FIELDS} >= {
        ("/api/auth/register", "username"), ("/api/auth/register", "password"),
        ("/api/auth/register", "display_name"), ("/api/auth/token", "password"),
        ("/api/chats", "title"), ("/api/chats/{uri}/messages", "message"),
        ("/api/chats/{uri}/messages", "client_id")}


def test_hostile_text_in_every_api_field(store_daemon: SyncDaemon, member: Member) -> None:
    statuses: dict[int, int] = {}

    @settings(FUZZ, max_examples=40)  # sign-ups and sign-ins hash a password: slow ones
    @given(target=st.sampled_from(FIELDS), value=hostile_text())
    def fuzz(target: tuple[str, str, str, list[str]], value: str) -> None:
        method, path, field, required = target
        body = {name: valid_value(name) for name in required}
        if path == "/api/auth/token":
            body["username"] = member.username  # a real user: only the fuzzed field is wrong
        body[field] = value
        status, reply = store_daemon.call(method, fill_path(path, member.chat), body,
                                          token=member.token)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (method, path, field, value, reply)
        if text_refused(field, value):
            if status == 401 and path == "/api/auth/token":
                return  # sign-in may just say no: no account has such a name or password
            assert status == 400 and reply["error"]["code"] == "invalid", (field, value, reply)

    fuzz()
    print(f"\napi text fuzz: statuses {sorted(statuses.items())}")


def _frame(kind: str, member: Member) -> dict[str, Any]:
    """A frame of ``kind`` the daemon accepts on a signed-in socket."""
    return {"auth": {"type": "auth", "token": member.token},
            "subscribe": {"type": "subscribe", "chat": member.chat, "after": None},
            "unsubscribe": {"type": "unsubscribe", "chat": member.chat},
            "send": {"type": "send", "chat": member.chat, "message": "hello",
                     "client_id": secrets.token_hex(8)},
            "typing": {"type": "typing", "chat": member.chat},
            "read": {"type": "read", "chat": member.chat, "seq": 0}}[kind]


FRAME_FIELDS = list(frame_text_fields())


def test_hostile_text_in_every_frame_field(store_daemon: SyncDaemon, member: Member) -> None:
    @FUZZ
    @given(target=st.sampled_from(FRAME_FIELDS), value=hostile_text(),
           name=hostile_names())
    def fuzz(target: tuple[str, str], value: str, name: str) -> None:
        kind, field = target
        frame = _frame(kind, member)
        if field == "chat":
            value = name  # anything but the chat: the names fuzzer's values
        frame[field] = value
        ws = rawws.RawSocket("127.0.0.1", store_daemon.port,
                             None if kind == "auth" else member.token, timeout=3)
        try:
            if kind != "auth":
                assert ws.next_json()["type"] == "ready"
            reply = rawws.reply_to(ws, frame)
            if kind == "auth":  # a bad token: refused, and perhaps closed with 4001
                assert reply["type"] == "error", reply
                assert reply["code"] in ({"invalid", "unauthenticated"}
                                         if text_refused(field, value) else {"unauthenticated"})
                try:
                    rawws.still_open(ws)
                except rawws.Closed as e:
                    assert e.code == 4001, e.code
                return
            if field == "chat":
                if kind == "unsubscribe" and reply["type"] == "unsubscribed":
                    assert reply["chat"] == value
                else:
                    assert reply["type"] == "error", reply
                    codes = name_refusals(value)
                    if kind == "typing":  # typing needs a subscription first: invalid
                        codes.add("invalid")
                    assert reply["code"] in codes, (value, reply)
            elif text_refused(field, value):
                assert reply["type"] == "error" and reply["code"] == "invalid", (value, reply)
            else:  # a fine text, or one the length rules refuse
                assert reply["type"] == "sent" or (reply["type"] == "error"
                                                   and reply["code"] == "invalid"), reply
            rawws.still_open(ws)
        finally:
            ws.close()

    fuzz()


#: Text the store must never see; sent among good posts of other users at the same moment.
BAD_MESSAGES = ["\ud800", "bad \x00 nul", "\x01", "x\udfffy", "\x00", "a\x1bb", "\udc00\ud800",
                "\x00 over the socket"]
POSTERS = 6


def test_a_bad_post_fails_alone(store_daemon: SyncDaemon, member: Member) -> None:
    """Good posts of other users racing a bad one (HTTP or socket) are all committed once."""
    users = [store_daemon.sign_up(PASSWORD)[1] for _ in range(POSTERS)]
    status, body = store_daemon.call("POST", "/api/chats", {"title": "race"}, token=member.token)
    assert status == 201, body
    uri = body["chat"]["uri"]
    for token in users:
        assert store_daemon.call("POST", f"/api/chats/{uri}/members", token=token)[0] == 200
    path = f"/api/chats/{uri}/messages"

    def post(start: threading.Barrier, token: str, text: str, client_id: str) -> Any:
        start.wait()
        return store_daemon.call("POST", path, {"message": text, "client_id": client_id},
                                 token=token)

    def send(start: threading.Barrier, ws: rawws.RawSocket, text: str) -> Any:
        start.wait()
        return rawws.reply_to(ws, {"type": "send", "chat": uri, "message": text,
                               "client_id": "bad-" + secrets.token_hex(4)})

    good_ids: list[str] = []
    with ThreadPoolExecutor(POSTERS + 1) as pool:
        for round_, bad in enumerate(BAD_MESSAGES):
            start = threading.Barrier(POSTERS + 1)
            ids = [f"good-{round_}-{i}" for i in range(POSTERS)]
            goods = [pool.submit(post, start, token, f"fine {i}", ids[i])
                     for i, token in enumerate(users)]
            ws = None
            if round_ % 2:  # over the socket
                ws = rawws.RawSocket("127.0.0.1", store_daemon.port, member.token, timeout=5)
                assert ws.next_json()["type"] == "ready"
                refused = pool.submit(send, start, ws, bad)
            else:
                refused = pool.submit(post, start, member.token, bad,
                                      "bad-" + secrets.token_hex(4))
            try:
                results = [g.result(30) for g in goods]
                answer = refused.result(30)
            finally:
                if ws is not None:
                    ws.close()
            assert all(status == 201 for status, _ in results), (bad, results)
            if ws is not None:
                assert answer["type"] == "error" and answer["code"] == "invalid", (bad, answer)
            else:
                status, reply = answer
                assert status == 400 and reply["error"]["code"] == "invalid", (bad, reply)
            good_ids += ids
    status, body = store_daemon.call("GET", f"{path}?limit=200", token=member.token)
    assert status == 200
    stored = [m["client_id"] for m in body["messages"]]
    assert sorted(stored) == sorted(good_ids)  # each good post once, no bad one


def test_no_bug_in_the_log(store_daemon: SyncDaemon) -> None:
    assert store_daemon.call("GET", "/healthz")[0] == 200
    bad = store_daemon.log_problems()
    assert not bad, bad[:5]
