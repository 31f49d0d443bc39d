"""Quotas and paging: sign-ups per address, chats per user, the chat list a page at a time,
and deeply nested JSON refused as 400."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from chatire.chats import ChatService
from chatire.config import Config
from chatire.errors import Invalid, RateLimited
from chatire.paging import decode_cursor, encode_cursor
from chatire.store import store_from_url
from tests.support.client import Api


def _limited(status: int, body: Any, api: Api, most: float) -> None:
    assert status == 429 and body["error"]["code"] == "rate_limited", (status, body)
    assert 1 <= int(api.last_headers.getRawHeaders("retry-after")[0]) <= most


async def _register(api: Api, name: str) -> tuple[int, Any]:
    return await api.call("POST", "/api/auth/register",
                          {"username": name, "password": "correct horse"})


# -- sign-ups per client address -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_sign_ups_past_the_rate_are_429_with_retry_after(make_daemon: Any) -> None:
    daemon = await make_daemon(signup_rate=5)
    api = Api(daemon.base_url)
    for i in range(5):
        assert (await _register(api, f"ok{i}"))[0] == 201
    status, body = await _register(api, "one-too-many")
    _limited(status, body, api, 3600 / 5)
    assert (await api.call("POST", "/api/auth/token",  # not created
                           {"username": "one-too-many", "password": "correct horse"}))[0] == 401
    # The accounts made keep working: the quota is on signing up only.
    status, _ = await api.call("POST", "/api/auth/token",
                               {"username": "ok0", "password": "correct horse"})
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_the_default_sign_up_rate_stops_a_mass_sign_up(make_daemon: Any) -> None:
    daemon = await make_daemon()  # --signup-rate 30
    api = Api(daemon.base_url)
    statuses = [(await _register(api, f"bulk{i}"))[0] for i in range(40)]
    assert statuses == [201] * 30 + [429] * 10


@pytest_twisted.ensureDeferred
async def test_sign_up_rate_zero_turns_it_off(make_daemon: Any) -> None:
    daemon = await make_daemon(signup_rate=0)
    api = Api(daemon.base_url)
    assert [(await _register(api, f"free{i}"))[0] for i in range(35)] == [201] * 35


def test_the_sign_up_quota_is_per_address_and_refills_over_the_hour() -> None:
    clock = Clock()
    chats = ChatService(cast(Any, None), Config(signup_rate=3), clock, cast(Any, None))
    for _ in range(3):
        chats.take_signup("192.0.2.1")
    with pytest.raises(RateLimited, match="too many sign-ups") as refused:
        chats.take_signup("192.0.2.1")
    assert refused.value.retry_after is not None
    assert 1199 <= refused.value.retry_after <= 1200
    chats.take_signup("192.0.2.2")  # another address is not affected
    clock.advance(1200)  # one sign-up's worth of the hour
    chats.take_signup("192.0.2.1")
    with pytest.raises(RateLimited, match="too many sign-ups"):
        chats.take_signup("192.0.2.1")


# -- chats per user ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_new_chats_past_the_rate_are_429_per_user(make_daemon: Any) -> None:
    daemon = await make_daemon(chat_rate=4)
    api = Api(daemon.base_url)
    flooder, other = await api.user(), await api.user()
    for _ in range(4):
        await flooder.new_chat()
    status, body = await flooder.call("POST", "/api/chats", {"title": "more"})
    _limited(status, body, api, 3600 / 4)
    assert len((await flooder.call("GET", "/api/chats"))[1]["chats"]) == 4
    await other.new_chat()  # per user: someone else still may


@pytest_twisted.ensureDeferred
async def test_the_default_chat_rate_stops_a_chat_flood(make_daemon: Any) -> None:
    daemon = await make_daemon()  # --chat-rate 100
    alice = await Api(daemon.base_url).user()
    started = time.monotonic()
    statuses = [(await alice.call("POST", "/api/chats", {}))[0] for _ in range(110)]
    assert statuses == [201] * 100 + [429] * 10, time.monotonic() - started


# -- the chat list in pages ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_chat_list_pages_latest_activity_first(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    uris = [await alice.new_chat(f"c{i}") for i in range(7)]
    await bob.new_chat("not alice's")
    await alice.post(uris[2], "bump")  # c2 now has the latest activity
    expected = [uris[2]] + [u for u in reversed(uris) if u != uris[2]]
    status, body = await alice.call("GET", "/api/chats")
    assert status == 200 and body["next"] is None
    assert [c["uri"] for c in body["chats"]] == expected
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, body = await alice.call("GET", "/api/chats" + query)
        assert status == 200 and len(body["chats"]) <= 3
        seen += [c["uri"] for c in body["chats"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor.isascii()
    assert seen == expected and pages == 3
    # A page that ends exactly at the end says so: no cursor to an empty page.
    status, body = await alice.call("GET", "/api/chats?limit=7")
    assert len(body["chats"]) == 7 and body["next"] is None


@pytest_twisted.ensureDeferred
async def test_the_chat_list_limit_defaults_to_100_and_stops_at_500(make_daemon: Any) -> None:
    daemon = await make_daemon(chat_rate=0)
    alice = await Api(daemon.base_url).user()
    for _ in range(105):
        await alice.new_chat()
    status, body = await alice.call("GET", "/api/chats")
    assert len(body["chats"]) == 100 and body["next"]
    status, rest = await alice.call("GET", f"/api/chats?cursor={body['next']}")
    assert len(rest["chats"]) == 5 and rest["next"] is None
    assert not {c["uri"] for c in body["chats"]} & {c["uri"] for c in rest["chats"]}
    status, body = await alice.call("GET", "/api/chats?limit=500")
    assert status == 200 and len(body["chats"]) == 105


@pytest.mark.parametrize("query", [
    "limit=0", "limit=501", "limit=-1", "limit=x", "cursor=", "cursor=%25%25",
    "cursor=bm90IGEgY3Vyc29y", "cursor=%E2%82%AC",
    "cursor=" + base64.urlsafe_b64encode(b"2026-01-01T00:00:00|12").decode(),  # naive time
    "cursor=" + base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|x").decode(),
    "cursor=" + base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "cursor=" + base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|" + b"9" * 30).decode(),
    "cursor=" + base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|-1").decode(),
])
@pytest_twisted.ensureDeferred
async def test_a_bad_limit_or_cursor_is_400_invalid(api: Api, query: str) -> None:
    alice = await api.user()
    await alice.new_chat()
    status, body = await alice.call("GET", f"/api/chats?{query}")
    assert status == 400 and body["error"]["code"] == "invalid", (query, body)


def test_cursors_round_trip_and_are_opaque_url_safe_text() -> None:
    key = (datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC), 42)
    cursor = encode_cursor(key)
    assert decode_cursor(cursor) == key
    assert cursor.replace("-", "").replace("_", "").isalnum()
    with pytest.raises(Invalid):
        decode_cursor(cursor[:-3])


# -- deeply nested JSON ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_deeply_nested_json_is_400_on_every_body(api: Api) -> None:
    alice = await api.user()
    uri = await alice.new_chat()
    deep = b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for method, path in (("POST", "/api/auth/register"), ("POST", "/api/auth/token"),
                         ("POST", "/api/chats"), ("POST", f"/api/chats/{uri}/messages")):
        for raw in (deep, b"[" * 60000, b"[" * 33 + b"]" * 33):
            status, body = await alice.call(method, path, raw=raw)
            assert status == 400 and body["error"]["code"] == "invalid", (path, status, body)
    # 32 levels is fine as JSON (the schema then refuses a list as a title).
    raw = b'{"title": ' + b"[" * 31 + b"]" * 31 + b"}"
    status, body = await alice.call("POST", "/api/chats", raw=raw)
    assert status == 400 and "deeper" not in body["error"]["message"]
    assert (await api.call("GET", "/healthz"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_store_pages_break_ties_of_activity_by_id_with_no_gap_or_repeat(
        db_url: str) -> None:
    store = store_from_url(db_url, reactor)
    await store.start()
    try:
        now = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
        owner = await store.create_user("owner", "x", "Owner", now)
        chats = [await store.create_chat(f"c{i:02d}" * 6, "t", owner.id,
                                         now + timedelta(seconds=i // 4)) for i in range(13)]
        expected = sorted(chats, key=lambda c: (c.created_at, c.id), reverse=True)
        seen, after, pages = [], None, 0
        while True:
            page = await store.list_chats(owner.id, 3, after)
            assert len(page.chats) <= 3
            seen += page.chats
            pages += 1
            if page.next is None:
                break
            after = decode_cursor(encode_cursor(page.next))  # through the wire form
        assert [c.id for c in seen] == [c.id for c in expected] and pages == 5
        assert (await store.list_chats(owner.id)).next is None  # no limit: all, one page
    finally:
        await store.stop()
