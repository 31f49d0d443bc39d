"""Notifications for members who are away (PROTOCOL.md v2), on both stores, with a real
webhook receiver: settings, levels, mentions, bursts, read and online members, the SSRF rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import pytest_twisted

from chatire.config import Config
from tests.conftest import start_daemon, stop_daemon
from tests.support.client import Api, Socket, User
from tests.support.receiver import Receiver, settled


@pytest.fixture
def config(db_url: str) -> Config:
    # Webhooks to the receiver on 127.0.0.1 (the address rule has tests of its own below).
    return Config(listen=("tcp:0:interface=127.0.0.1",), db=db_url, send_rate=0,
                  webhook_allow_private=True, public_url="https://chat.example.org")


@pytest_twisted.async_yield_fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = await Receiver().start()
    yield hook
    await hook.stop()


async def _settings(user: User, **body: Any) -> dict[str, Any]:
    status, reply = await user.call("PUT", "/api/me/notifications", body)
    assert status == 200, reply
    return dict(reply["notifications"])


async def _pair(api: Api) -> tuple[User, User, str]:
    alice, bob = await api.user("alice"), await api.user("bob")
    uri = await alice.new_chat("Team")
    await bob.join(uri)
    return alice, bob, uri


@pytest_twisted.ensureDeferred
async def test_settings_start_at_the_defaults_and_never_show_the_secret(api: Api) -> None:
    bob = await api.user()
    status, body = await bob.call("GET", "/api/me/notifications")
    assert status == 200
    assert body["notifications"] == {"level": "mentions", "delay": 60, "webhook": None,
                                     "email": None}
    assert body["email_enabled"] is False
    shown = await _settings(bob, webhook={"url": "https://hooks.example.org/x",
                                          "secret": "s3cret"})
    assert shown["webhook"] == {"url": "https://hooks.example.org/x", "secret": None,
                                "has_secret": True}
    # A change that leaves the webhook out, or gives it without its secret, keeps the secret.
    assert (await _settings(bob, level="all", delay=5))["webhook"]["has_secret"] is True
    kept = await _settings(bob, webhook={"url": "https://hooks.example.org/y"})
    assert kept["webhook"] == {"url": "https://hooks.example.org/y", "secret": None,
                               "has_secret": True}
    status, body = await bob.call("GET", "/api/me/notifications")
    assert body["notifications"]["level"] == "all" and body["notifications"]["delay"] == 5
    assert "s3cret" not in repr(body)
    gone = await _settings(bob, webhook={"url": "https://hooks.example.org/y", "secret": None})
    assert gone["webhook"]["has_secret"] is False
    assert (await _settings(bob, webhook=None))["webhook"] is None


@pytest.mark.parametrize("body", [
    {"webhook": {"url": "ftp://example.org/hook"}},
    {"webhook": {"url": "javascript:alert(1)"}},
    {"webhook": {"url": "http://"}},
    {"webhook": {"url": "https://user:pw@example.org/"}},
    {"webhook": {"url": "https://example.org/" + "x" * 3000}},
    {"webhook": {"secret": "no url"}},
    {"webhook": {"url": "https://example.org/", "secret": "x" * 300}},
    {"level": "loud"},
    {"delay": -1},
    {"delay": 86401},
    {"delay": "60"},
    {"email": "bob@example.org"},  # this daemon has no relay
])
@pytest_twisted.ensureDeferred
async def test_bad_settings_are_400_and_change_nothing(api: Api, body: dict[str, Any]) -> None:
    bob = await api.user()
    before = await _settings(bob, level="all")
    status, reply = await bob.call("PUT", "/api/me/notifications", body)
    assert status == 400 and reply["error"]["code"] == "invalid", reply
    assert (await bob.call("GET", "/api/me/notifications"))[1]["notifications"] == before


@pytest_twisted.ensureDeferred
async def test_a_members_level_for_one_chat(api: Api) -> None:
    _, bob, uri = await _pair(api)
    path = f"/api/chats/{uri}/notifications"
    assert await bob.call("GET", path) == (200, {"level": None})
    assert await bob.call("PUT", path, {"level": "none"}) == (200, {"level": "none"})
    assert await bob.call("GET", path) == (200, {"level": "none"})
    assert (await bob.call("PUT", path, {"level": "loud"}))[0] == 400
    assert (await bob.call("PUT", path, {}))[0] == 400
    assert await bob.call("PUT", path, {"level": None}) == (200, {"level": None})
    stranger = await api.user()
    assert (await stranger.call("PUT", path, {"level": "all"}))[0] == 403
    assert (await stranger.call("GET", "/api/chats/nosuchchat/notifications"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_a_mention_reaches_the_webhook_signed(api: Api, receiver: Receiver) -> None:
    alice, bob, uri = await _pair(api)
    await _settings(bob, delay=0, webhook={"url": receiver.url, "secret": "k3y"})
    await alice.post(uri, "nothing for bob here")
    await alice.post(uri, "hi @BOB, look at this")
    await alice.post(uri, "an email@bob.example is no mention")
    [got] = await receiver.wait_for(1)
    body = got.json
    assert got.signed_by("k3y") and got.content_type == "application/json"
    assert body["type"] == "chatire.notification" and body["id"].startswith("n_")
    assert body["user"]["username"] == "bob"
    assert body["chat"] == {"uri": uri, "title": "Team",
                            "url": f"https://chat.example.org/c/{uri}"}
    assert [m["message"] for m in body["messages"]] == ["hi @BOB, look at this"]
    assert body["more"] == 0 and "Team" in body["text"] and "\n" not in body["text"]
    await settled(1.5)
    assert len(receiver.requests) == 1


@pytest_twisted.ensureDeferred
async def test_a_burst_is_one_notification_listing_twenty_and_counting_the_rest(
        api: Api, receiver: Receiver) -> None:
    alice, bob, uri = await _pair(api)
    await _settings(bob, level="all", delay=2, webhook={"url": receiver.url})
    for i in range(25):
        await alice.post(uri, f"message {i}")
    [got] = await receiver.wait_for(1)
    body = got.json
    assert got.signature is None  # no secret, no signature
    assert [m["seq"] for m in body["messages"]] == list(range(2, 22))  # seq 1: bob's join
    assert body["more"] == 5 and body["text"].startswith("25 new messages in Team")
    await settled(1.5)
    assert len(receiver.requests) == 1


@pytest_twisted.ensureDeferred
async def test_nothing_is_sent_to_a_member_who_read_it_or_is_here(
        api: Api, receiver: Receiver, daemon: Any) -> None:
    alice, bob, uri = await _pair(api)
    await _settings(bob, level="all", delay=1, webhook={"url": receiver.url})
    message = await alice.post(uri, "read me")
    assert (await bob.call("PUT", f"/api/chats/{uri}/read", {"seq": message["seq"]}))[0] == 204
    await settled(2.5)
    assert receiver.requests == []
    socket = await Socket.open(daemon.base_url, bob.token)
    try:
        await socket.subscribe(uri)
        await alice.post(uri, "bob is looking")
        await settled(2.5)
        assert receiver.requests == []
    finally:
        await socket.close()


@pytest_twisted.ensureDeferred
async def test_a_chat_level_wins_over_the_default(api: Api, receiver: Receiver) -> None:
    alice, bob, uri = await _pair(api)
    other = await alice.new_chat("Other")
    await bob.join(other)
    await _settings(bob, level="all", delay=0, webhook={"url": receiver.url})
    assert (await bob.call("PUT", f"/api/chats/{uri}/notifications", {"level": "none"}))[0] == 200
    await alice.post(uri, "muted chat, @bob even")
    await alice.post(other, "this one counts")
    [got] = await receiver.wait_for(1)
    assert got.json["chat"]["uri"] == other
    await settled(1.5)
    assert len(receiver.requests) == 1


@pytest_twisted.ensureDeferred
async def test_the_test_button_sends_now_and_has_a_limit(api: Api, receiver: Receiver) -> None:
    bob = await api.user()
    assert (await bob.call("POST", "/api/me/notifications/test"))[0] == 409  # no channel
    await _settings(bob, webhook={"url": receiver.url, "secret": "k"})
    for _ in range(3):
        status, body = await bob.call("POST", "/api/me/notifications/test")
        assert status == 200 and body["results"]["webhook"].startswith("delivered")
    assert all(r.signed_by("k") and r.json["test"] for r in receiver.requests)
    status, body = await bob.call("POST", "/api/me/notifications/test")
    assert status == 429 and body["error"]["code"] == "rate_limited"


@pytest_twisted.async_yield_fixture
async def strict_daemon(config: Config) -> AsyncIterator[Any]:
    service = await start_daemon(attrs.evolve(config, webhook_allow_private=False))
    yield service
    await stop_daemon(service)


@pytest_twisted.ensureDeferred
async def test_without_allow_private_a_loopback_webhook_gets_nothing(
        strict_daemon: Any, receiver: Receiver) -> None:
    api = Api(strict_daemon.base_url)
    alice, bob, uri = await _pair(api)
    # Accepted when set (it is http), refused when connecting.
    await _settings(bob, level="all", delay=0, webhook={"url": receiver.url})
    localhost = receiver.url.replace("127.0.0.1", "localhost")
    await alice.post(uri, "for bob")
    status, body = await bob.call("POST", "/api/me/notifications/test")
    assert status == 200 and body["results"]["webhook"].startswith("failed")
    await _settings(bob, webhook={"url": localhost})
    status, body = await bob.call("POST", "/api/me/notifications/test")
    assert status == 200 and body["results"]["webhook"].startswith("failed")
    await settled(2.5)
    assert receiver.requests == []
    failures = strict_daemon.metrics.notification_failures.labels("webhook")._value.get()
    assert failures >= 1
