"""Logs: --log-format json writes one JSON object a line; no token, password or chat uri in any."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

import pytest
import pytest_twisted

from chatire.logs import event_as_json, redact_path
from tests.support.client import Api, Socket
from tests.support.daemons import DaemonProcess, EnvDaemon


@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest_twisted.ensureDeferred
async def test_logs_keep_secrets_out(tmp_path: Path, log_format: str) -> None:
    daemon = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / 'l.db'}", "memory://",
                           "--log-format", log_format, "--send-rate", "0")
    await daemon.start()
    api = Api(daemon.base_url)
    password = "hunter2-correct-horse"
    wrong = "wrong-battery-staple"
    status, _ = await api.call("POST", "/api/auth/register",
                               {"username": "logan", "password": password})
    assert status == 201
    status, _ = await api.call("POST", "/api/auth/token", {"username": "logan", "password": wrong})
    assert status == 401
    status, body = await api.call("POST", "/api/auth/token",
                                  {"username": "logan", "password": password})
    token = body["token"]
    _, body = await api.call("POST", "/api/chats", {"title": "t"}, token=token)
    uri = body["chat"]["uri"]
    text = "a very private message body"
    await api.call("POST", f"/api/chats/{uri}/messages", {"message": text}, token=token)
    await api.call("GET", f"/api/chats/{uri}/messages?after=0&limit=5", token=token)
    await api.call("GET", "/api/me", token=token)
    garbage = "garbage-token-that-is-not-valid-0123456789"
    status, _ = await api.call("GET", "/api/me", token=garbage)
    assert status == 401
    by_frame = await Socket.open(daemon.base_url, token)  # auth frame
    by_header = await Socket.open(daemon.base_url, token, auth_frame=False)
    await by_frame.subscribe(uri, after=0)
    assert (await by_frame.next_of("message"))["message"] == text
    bad = await Socket.open(daemon.base_url)
    bad.send({"type": "auth", "token": garbage})
    assert await bad.closed == 4001
    status, _ = await api.call("GET", "/livez")
    assert status == 200
    with pytest.raises(Exception, match=r"403|closed"):
        await Socket.open(daemon.base_url, token, origin="http://evil.example")
    status, _ = await api.call("DELETE", "/api/auth/token", token=token)
    assert status == 204
    await by_header.closed
    await by_frame.closed
    assert await daemon.stop(signal.SIGTERM) == -signal.SIGTERM

    log = daemon.log.read_text()
    for secret in (token, password, wrong, garbage, uri, text):
        assert secret not in log, secret
    assert "Bearer" not in log
    if log_format == "json":
        records = [json.loads(line) for line in log.splitlines()]  # every line is JSON
        assert all({"time", "level", "namespace", "text"} <= r.keys() for r in records)
        access = [r for r in records if r["namespace"] == "chatire.access"]
        posts = [r for r in access if r["method"] == "POST" and "/messages" in r["path"]]
        assert posts and posts[0]["status"] == 201
        assert posts[0]["path"] == f"/api/chats/{uri[:6]}.../messages"
        assert any(r["path"] == "/api/me" and r["status"] == 401 for r in access)
        assert any(r["text"] == "chatire stopped" for r in records)
        # Probes (start() polled /healthz, this called /livez) stay out of the access log.
        assert not [r for r in access if r["path"] in ("/healthz", "/livez")]
        # Each WebSocket is there once it closed: status 101, its close code, its lifetime.
        sockets = [r for r in access if r["path"] == "/ws"]
        assert len(sockets) == 4, sockets
        refused = [r for r in sockets if r["status"] == 403]  # the foreign Origin
        assert len(refused) == 1 and refused[0]["user_agent"], refused
        opened = [r for r in sockets if r["status"] == 101]
        assert sorted(r["close"] for r in opened) == [4001, 4001, 4001], sockets
        assert all(r["duration"] >= 0 for r in sockets)
        assert all(r["text"].startswith("GET /ws 101 close 4001 after ") for r in opened)
    else:
        assert "chatire.access" in log and "chatire stopped" in log


def test_redacted_paths() -> None:
    assert redact_path("/api/chats/AbCdEfGhIjKlMnOp/messages?after=3&token=x&limit=2") \
        == "/api/chats/AbCdEf.../messages?after=3&limit=2"
    assert redact_path("/c/AbCdEfGhIjKlMnOp") == "/c/AbCdEf..."
    assert redact_path("/api/me?access_token=secret") == "/api/me?..."
    assert redact_path("/healthz") == "/healthz"


def test_json_lines_carry_fields_and_failures() -> None:
    from twisted.logger import LogLevel
    from twisted.python.failure import Failure

    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    line = event_as_json({"log_time": 0.0, "log_level": LogLevel.error, "log_namespace": "x",
                          "log_format": "failed {what}", "what": "thing", "obj": object(),
                          "log_failure": failure})
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert record["time"] == "1970-01-01T00:00:00.000Z" and record["level"] == "error"
    assert record["text"] == "failed thing" and record["what"] == "thing"
    assert record["error"] == "boom" and "ValueError" in record["traceback"]
    assert record["obj"].startswith("<object object")


@pytest.mark.parametrize("to_file", [False, True])
def test_the_tac_file_writes_json_logs_too(tmp_path: Path, to_file: bool) -> None:
    # twistd's own --logfile is honoured; without it the log goes to standard output.
    daemon = EnvDaemon(tmp_path, f"sqlite:///{tmp_path / 'tac.db'}",
                       {"CHATIRE_LOG_FORMAT": "json"}, tac=True, name="tac",
                       logfile=tmp_path / "tac.log" if to_file else None)
    daemon.start()
    try:
        with urllib.request.urlopen(daemon.base_url + "/api/config", timeout=5):
            pass
    finally:
        daemon.stop()
    log = daemon.log
    records = [json.loads(line) for line in log.read_text().splitlines()]
    access = [r["path"] for r in records if r["namespace"] == "chatire.access"]
    assert access == ["/api/config"]  # the /healthz probes are not in the access log
    if to_file:
        assert "chatire.access" not in daemon.output.read_text()
