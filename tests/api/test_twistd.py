"""`twistd chatire` as an operator meets it: listed, clear one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatire.testing import twistd
from tests.support.daemons import REPO

TWISTD = twistd()


def _twistd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TWISTD, "-n", "--pidfile=", "chatire", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_twistd_lists_the_plugin() -> None:
    out = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "chatire" in out


def test_options_in_help_have_protocol_names() -> None:
    out = subprocess.run([TWISTD, "chatire", "--help"], capture_output=True, text=True,
                         timeout=60).stdout
    for option in ("--listen", "--db", "--bus", "--max-message-chars", "--max-body-bytes",
                   "--max-frame-bytes", "--send-rate", "--send-burst", "--login-failures",
                   "--max-connections", "--ping-interval", "--ping-timeout",
                   "--slow-reader-bytes", "--token-lifetime", "--allowed-origin"):
        assert option in out, option


@pytest.mark.parametrize("args, words", [
    (["--max-frame-bytes", "lots"], "--max-frame-bytes: expected int"),
    (["--send-rate", "-1"], "--send-rate: must not be negative"),
    (["--db", "mysql://x"], "--db: unsupported URL scheme"),
    (["--bus", "kafka://x"], "--bus: unsupported URL scheme"),
    (["--db", "postgresql://root@127.0.0.1:1/nothing"], "cannot reach the database"),
    (["--db", "sqlite:////nonexistent-dir/x.db"], "cannot write the SQLite database"),
    # A broker that refuses us for good is a misconfiguration, not an outage: one line.
    (["--bus", "amqp://guest:guest@127.0.0.1:5672/no-such-vhost-here"],
     "the broker refused the bus link"),
    (["--bus", "amqp://guest:not-the-password@127.0.0.1:5672/%2F"],
     "the broker refused the bus link"),
    (["--bus", "amqp://guest:guest@127.0.0.1:5672/%2F,memory://"], "must all be amqp"),
])
def test_bad_set_ups_fail_with_one_clear_line(args: list[str], words: str) -> None:
    result = _twistd(*args)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert words in output, output
    assert "Traceback" not in output


def test_the_wheel_carries_the_plugin_and_the_ui(tmp_path: Path) -> None:
    """A non-editable install must find the plugin and serve the UI (package data)."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = tmp_path.glob("chatire-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/chatire_plugin.py" in names
    assert "twisted/plugins/__init__.py" not in names
    assert "chatire/web/index.html" in names and "chatire/web/app.js" in names
    assert any(name.startswith("chatire/web/js/") for name in names)


def _call(base: str, method: str, path: str, body: dict[str, object] | None = None,
          token: str | None = None) -> tuple[int, dict[str, object]]:
    """One blocking JSON call (these tests drive a daemon in another process)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.mark.parametrize("how", ["tac", "plugin"])
def test_chatire_variables_configure_the_tac_and_the_plugin(tmp_path: Path, how: str) -> None:
    from tests.support.daemons import EnvDaemon

    daemon = EnvDaemon(tmp_path, f"sqlite:///{tmp_path / 'env.db'}",
                       {"CHATIRE_MAX_MESSAGE_CHARS": "10"}, tac=how == "tac")
    daemon.start()
    base = daemon.base_url
    try:
        assert (tmp_path / "env.db").exists()
        _call(base, "POST", "/api/auth/register",
              {"username": "envy", "password": "a fine passphrase"})
        _, signed_in = _call(base, "POST", "/api/auth/token",
                             {"username": "envy", "password": "a fine passphrase"})
        token = str(signed_in["token"])
        _, made = _call(base, "POST", "/api/chats", {"title": "t"}, token)
        uri = made["chat"]["uri"]  # type: ignore[index]
        assert _call(base, "POST", f"/api/chats/{uri}/messages", {"message": "x" * 10},
                     token)[0] == 201
        assert _call(base, "POST", f"/api/chats/{uri}/messages", {"message": "x" * 11},
                     token)[0] == 400  # CHATIRE_MAX_MESSAGE_CHARS=10 is in effect
    finally:
        daemon.stop(timeout=30)


def test_a_flag_wins_over_its_variable_and_help_shows_no_secret() -> None:
    from twisted.python.usage import UsageError

    from chatire.tap import Options

    environ = {"CHATIRE_MAX_MESSAGE_CHARS": "10", "CHATIRE_LISTEN": "tcp:1,tcp:2",
               "CHATIRE_BUS": "amqp://chatire:s3cret-pw@127.0.0.1:5672/%2F"}
    options = Options(environ)
    options.parseOptions([])
    assert options.config.max_message_chars == 10
    assert options.config.listen == ("tcp:1", "tcp:2")
    assert options.config.bus.endswith("@127.0.0.1:5672/%2F")
    options = Options(environ)
    options.parseOptions(["--max-message-chars", "20", "--listen", "tcp:3"])
    assert options.config.max_message_chars == 20
    assert options.config.listen == ("tcp:3",)
    assert "s3cret-pw" not in Options(environ).getUsage()
    with pytest.raises(UsageError, match="--max-message-chars"):
        Options({"CHATIRE_MAX_MESSAGE_CHARS": "ten"}).parseOptions([])


@pytest.mark.parametrize("command", [[], ["migrate"]])
def test_admin_help_shows_no_secret(command: list[str]) -> None:
    import os

    env = {**os.environ, "CHATIRE_DB": "postgresql://chatire:s3cret-pw@db/chatire",
           "CHATIRE_BUS": "amqp://chatire:s3cret-pw@mq/%2F"}
    shown = subprocess.run([sys.executable, "-m", "chatire", *command, "--help"], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "s3cret-pw" not in shown.stdout + shown.stderr
