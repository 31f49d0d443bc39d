"""A daemon out of file descriptors: the limit logged at start, refusals once an interval."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.daemons import REPO, free_port

TWISTD = str(Path(sys.executable).with_name("twistd"))
LIMIT = 64


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@pytest.mark.skipif(not Path("/usr/bin/prlimit").exists(), reason="needs util-linux prlimit")
def test_out_of_descriptors_logs_a_line_an_interval_and_recovers(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "daemon.log"
    command = ["/usr/bin/prlimit", f"--nofile={LIMIT}:{LIMIT}", TWISTD, "-n", "--pidfile=",
               "--logfile", str(log), "chatire", "--listen", f"tcp:{port}:interface=127.0.0.1",
               "--db", f"sqlite:///{tmp_path / 'chatire.db'}", "--bus", "memory://"]
    proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while not _healthy(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "daemon not healthy in 30 s"
            time.sleep(0.1)
        # Three waves of more connections than the daemon has descriptors for.
        for _ in range(3):
            for _ in range(LIMIT):
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                clients.append(client)
            time.sleep(0.5)
        assert proc.poll() is None
        for client in clients:
            client.close()
        clients.clear()
        deadline = time.monotonic() + 10
        while not _healthy(port):  # it serves again once the sockets are gone
            assert time.monotonic() < deadline, "daemon did not recover"
            time.sleep(0.2)
        text = log.read_text()
        assert f"open files: limit {LIMIT}" in text
        refusals = [line for line in text.splitlines() if "out of file descriptors" in line]
        assert 1 <= len(refusals) <= 2, text
        assert "EMFILE" not in text
        assert "Traceback" not in text
    finally:
        for client in clients:
            client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
