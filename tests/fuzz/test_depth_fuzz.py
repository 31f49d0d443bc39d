"""JSON nested to any depth in every request body and frame, and paths the UI has no file for.

PROTOCOL.md (Abuse limits): JSON nested deeper than 32 levels is 400 ``invalid`` over
HTTP and an ``invalid`` error frame on the socket, which stays open; static files have
no directory listings and a path that is not a file is 404. Never a 5xx.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from chatire.service import default_web_root
from tests.fuzz import rawws
from tests.fuzz.conftest import EXPLORE, Member, SyncDaemon, valid_value
from tests.fuzz.strategies import (
    MAX_DEPTH,
    api_text_fields,
    deep_json,
    depth,
    hostile_text,
    nestings,
    wire,
)
from tests.support.client import fill_path

FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=not EXPLORE,
                suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
#: Every operation with a request body, and the fields it needs.
BODIES = sorted({(method, path, tuple(required))
                 for method, path, _, required in api_text_fields()})


@pytest.fixture(scope="module")
def member(fuzz_daemon: SyncDaemon) -> Member:
    return Member(fuzz_daemon)


def _body(member: Member, path: str, required: tuple[str, ...]) -> dict[str, Any]:
    body = {name: valid_value(name) for name in required}
    if path == "/api/auth/token":
        body["username"] = member.username
    return body


def test_nesting_in_every_request_body(fuzz_daemon: SyncDaemon, member: Member) -> None:
    @FUZZ
    @given(target=st.sampled_from(BODIES), pad=nestings())
    def fuzz(target: tuple[str, str, tuple[str, ...]], pad: Any) -> None:
        method, path, required = target
        body = {**_body(member, path, required), "pad": pad}
        status, reply = fuzz_daemon.call(method, fill_path(path, member.chat), body,
                                         token=member.token)
        assert status < 500, (path, depth(body), reply)
        if depth(body) > MAX_DEPTH:
            assert status == 400 and reply["error"]["code"] == "invalid", (
                path, depth(body), status, reply)

    fuzz()


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 1000, 20000])
def test_a_deep_body_is_invalid_however_deep(fuzz_daemon: SyncDaemon, member: Member,
                                             levels: int) -> None:
    for method, path, _ in BODIES:
        status, raw = fuzz_daemon.request(method, fill_path(path, member.chat),
                                          deep_json(levels), token=member.token)
        assert status == 400 and b'"invalid"' in raw, (path, levels, status, raw[:200])


def _deep_frame(levels: int) -> bytes:
    """An ``unsubscribe`` frame (always answered) padded with ``levels`` of nesting."""
    return (b'{"type": "unsubscribe", "chat": "deep", "pad": ' + b"[" * (levels - 1)
            + b"]" * (levels - 1) + b"}")


def test_nesting_in_every_frame(fuzz_daemon: SyncDaemon, member: Member) -> None:
    @FUZZ
    @given(pad=nestings(), kind=st.sampled_from(["unsubscribe", "subscribe", "send", "typing",
                                                 "auth"]))
    def fuzz(pad: Any, kind: str) -> None:
        frame: dict[str, Any] = {"type": kind, "chat": "deep", "pad": pad}
        ws = rawws.RawSocket("127.0.0.1", fuzz_daemon.port, member.token, timeout=3)
        try:
            assert ws.next_json()["type"] == "ready"
            ws.send_frame(wire(frame))
            try:
                reply = ws.next_json()
            except rawws.Closed as e:
                raise AssertionError(f"closed {e.code} at depth {depth(frame)}") from None
            if depth(frame) > MAX_DEPTH:
                assert reply["type"] == "error" and reply["code"] == "invalid", (
                    depth(frame), reply)
            else:
                assert reply["type"] in {"error", "unsubscribed"}, reply
            rawws.still_open(ws)
        finally:
            ws.close()

    fuzz()


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 1000, 8000])
def test_a_deep_frame_is_invalid_and_the_socket_stays(fuzz_daemon: SyncDaemon, member: Member,
                                                      levels: int) -> None:
    ws = rawws.RawSocket("127.0.0.1", fuzz_daemon.port, member.token, timeout=3)
    try:
        assert ws.next_json()["type"] == "ready"
        ws.send_frame(_deep_frame(levels))
        try:
            reply = ws.next_json()
        except rawws.Closed as e:
            raise AssertionError(f"closed {e.code} at depth {levels}") from None
        assert reply["type"] == "error" and reply["code"] == "invalid", reply
        rawws.still_open(ws)
    finally:
        ws.close()


# -- static files -------------------------------------------------------------------------------

WEB = default_web_root()
FILES = {"/" + "/".join(f.segmentsFrom(WEB)) for f in WEB.walk() if f.isfile()}
FOLDERS = {"/" + "/".join(f.segmentsFrom(WEB)) for f in WEB.walk() if f.isdir() and f != WEB}
ROUTED = {"api", "ws", "healthz", "c", "metrics", "i"}  # not the static files' business


def _segment() -> st.SearchStrategy[str]:
    def encode(text: str) -> str:
        # UTF-8 only: Klein answers a path that is not UTF-8 with 400 but logs a
        # traceback for it, which the log check below would count as a bug.
        return urllib.parse.quote(text.encode("utf-8", "replace"), safe="")

    return st.one_of(
        st.sampled_from([f.strip("/") for f in sorted(FILES | FOLDERS)]
                        + ["..", ".", "%00", "%2e%2e", "%2f", "%5c", ""]),
        hostile_text(max_size=12).map(encode),
    )


def test_folders_are_not_listed(fuzz_daemon: SyncDaemon) -> None:
    assert FOLDERS, "the UI has folders: this test must see them"
    for folder in sorted(FOLDERS):
        for path in (folder + "/", folder):
            status, raw = fuzz_daemon.request("GET", path)
            assert status == 404 and b"Directory listing" not in raw, (path, status)
    status, _ = fuzz_daemon.request("GET", "/%00")
    assert status == 404, status


def test_no_path_breaks_the_static_files(fuzz_daemon: SyncDaemon) -> None:
    @FUZZ
    @given(segments=st.lists(_segment(), min_size=1, max_size=4))
    @example(segments=["js", ""])
    @example(segments=["%00"])
    def fuzz(segments: list[str]) -> None:
        if segments[0] in ROUTED:
            return
        path = "/" + "/".join(segments)
        status, raw = fuzz_daemon.request("GET", path)
        assert status < 500, (path, status)
        assert b"Directory listing" not in raw, path
        if status == 200:
            assert urllib.parse.unquote(path) in FILES | {"/"}, path

    fuzz()


def test_no_bug_in_the_log(fuzz_daemon: SyncDaemon) -> None:
    assert fuzz_daemon.call("GET", "/healthz")[0] == 200
    bad = fuzz_daemon.log_problems()
    assert not bad, bad[:5]
