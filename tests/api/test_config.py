"""GET /api/config: the limits a daemon really applies, readable without a token."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from jsonschema import Draft202012Validator

from chatire import openapi
from tests.support.client import Api


@pytest_twisted.ensureDeferred
async def test_config_reports_the_limits_the_daemon_runs_with(make_daemon: Any) -> None:
    daemon = await make_daemon(max_message_chars=500, max_body_bytes=3000,
                               max_frame_bytes=2000, send_rate=2.5, send_burst=7)
    api = Api(daemon.base_url)
    status, body = await api.call("GET", "/api/config")  # no token
    assert status == 200
    assert body == {"protocol": 2, "limits": {
        "message_chars": 500, "title_chars": 200, "body_bytes": 3000, "frame_bytes": 2000,
        "send_rate": 2.5, "send_burst": 7}}
    assert api.last_headers.getRawHeaders("cache-control") == ["no-store"]
    spec = openapi.build()
    schema = {**spec["components"]["schemas"]["Config"], "$defs": {}}
    Draft202012Validator(schema).validate(body)

    # What it says is what it does: the user's message at the limit, the attacker's past it.
    alice = await api.user("alice")
    uri = await alice.new_chat()
    assert (await alice.post(uri, "x" * 500))["seq"] == 1
    status, refused = await alice.call("POST", f"/api/chats/{uri}/messages",
                                       {"message": "x" * 501})
    assert status == 400 and refused["error"]["code"] == "invalid"
    status, _ = await alice.call("POST", "/api/chats", {"title": "t" * 200})
    assert status == 201
    status, refused = await alice.call("POST", "/api/chats", {"title": "t" * 201})
    assert status == 400 and refused["error"]["code"] == "invalid"


@pytest_twisted.ensureDeferred
async def test_config_defaults(make_daemon: Any) -> None:
    daemon = await make_daemon(send_rate=10.0)
    status, body = await Api(daemon.base_url).call("GET", "/api/config")
    assert status == 200
    assert body == {"protocol": 2, "limits": {
        "message_chars": 4000, "title_chars": 200, "body_bytes": 65536, "frame_bytes": 65536,
        "send_rate": 10.0, "send_burst": 50}}
