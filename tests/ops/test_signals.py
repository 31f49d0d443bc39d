"""SIGHUP reopens the log file (logrotate's move) and never stops the daemon; SIGUSR1 rotates
it as twistd does; with --log-format json, twistd's --logfile is honoured, --syslog refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import pytest_twisted

from chatire.testing import twistd
from tests.support.daemons import REPO, DaemonProcess, sleep

TWISTD = twistd()


class LoggingDaemon(DaemonProcess):
    """A daemon given twistd's own --logfile (before the `chatire` subcommand)."""

    def __init__(self, workdir: Path, logfile: Path, *options: str) -> None:
        super().__init__(workdir, f"sqlite:///{workdir / 'log.db'}", "memory://", *options,
                         logfile=logfile)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def _until(path: Path, text: str, timeout: float = 10.0) -> str:
    for _ in range(int(timeout / 0.05)):
        if text in (content := _read(path)):
            return content
        await sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}")


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest_twisted.ensureDeferred
async def test_sighup_reopens_the_logfile_and_the_daemon_keeps_serving(
        tmp_path: Path, log_format: str) -> None:
    logfile = tmp_path / "chatire.log"
    daemon = LoggingDaemon(tmp_path, logfile, "--log-format", log_format,
                           "--shutdown-timeout", "3")
    await daemon.start()
    try:
        first = await _until(logfile, "chatire listening on")  # --logfile honoured
        if log_format == "json":
            assert all(json.loads(line)["time"] for line in first.splitlines())
        assert daemon.proc is not None
        # logrotate's way: move the file away, then SIGHUP.
        logfile.rename(tmp_path / "chatire.log.moved")
        daemon.proc.send_signal(signal.SIGHUP)
        reopened = await _until(logfile, "SIGHUP: reopened the log file")
        assert daemon.proc.poll() is None, daemon.tail()
        assert await daemon.healthy()
        assert "chatire listening" not in reopened  # a new file, the old one kept
        assert "SIGHUP" not in (tmp_path / "chatire.log.moved").read_text()

        # SIGUSR1: twistd's own rotation (chatire.log -> chatire.log.1).
        daemon.proc.send_signal(signal.SIGUSR1)
        await _until(logfile, "SIGUSR1: rotated the log file")
        assert "SIGHUP: reopened" in (tmp_path / "chatire.log.1").read_text()
        assert await daemon.healthy()

        assert await daemon.stop(signal.SIGTERM) == -signal.SIGTERM
        assert "chatire stopped" in logfile.read_text()
    finally:
        await daemon.stop()


@pytest_twisted.ensureDeferred
async def test_sighup_with_the_log_on_standard_output_is_harmless(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / 'o.db'}", "memory://",
                           "--log-format", "json")
    await daemon.start()
    try:
        assert daemon.proc is not None
        for _ in range(2):
            daemon.proc.send_signal(signal.SIGHUP)
            await _until(daemon.log, "no file to reopen; still running")
        assert await daemon.healthy()
        assert await daemon.stop(signal.SIGTERM) == -signal.SIGTERM
    finally:
        await daemon.stop()


@pytest.mark.parametrize("twistd_option", [["--syslog"], ["--logger", "os.getcwd"]])
def test_json_logs_refuse_what_they_cannot_honour(tmp_path: Path,
                                                  twistd_option: list[str]) -> None:
    result = subprocess.run(
        [TWISTD, "-n", "--pidfile=", *twistd_option, "chatire", "--log-format", "json",
         "--db", f"sqlite:///{tmp_path / 'x.db'}", "--listen", "tcp:0:interface=127.0.0.1"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=60)
    assert result.returncode != 0
    assert f"drop twistd's {twistd_option[0]}" in result.stderr + result.stdout
