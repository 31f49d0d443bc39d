"""`twistd chatire` as an operator meets it: listed, clear one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemons import REPO

TWISTD = str(Path(sys.executable).with_name("twistd"))


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


def test_the_tac_file_reads_chatire_environment_variables(tmp_path: Path) -> None:
    import os
    import signal
    import time
    import urllib.request

    from tests.support.daemons import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "CHATIRE_LISTEN": f"tcp:{port}:interface=127.0.0.1",
           "CHATIRE_DB": f"sqlite:///{tmp_path / 'tac.db'}", "CHATIRE_MAX_MESSAGE_CHARS": "10"}
    proc = subprocess.Popen([TWISTD, "-ny", str(REPO / "chatire.tac"), "--pidfile="],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert (tmp_path / "tac.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
