"""A daemon out of file descriptors: the limit logged at start, refusals once an interval."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from chatire.testing import BlockingDaemon

LIMIT = 64


@pytest.mark.skipif(not Path("/usr/bin/prlimit").exists(), reason="needs util-linux prlimit")
def test_out_of_descriptors_logs_a_line_an_interval_and_recovers(tmp_path: Path) -> None:
    daemon = BlockingDaemon(tmp_path, f"sqlite:///{tmp_path / 'chatire.db'}", "memory://",
                            logfile=tmp_path / "daemon.log",
                            launcher=("/usr/bin/prlimit", f"--nofile={LIMIT}:{LIMIT}"))
    port, log = daemon.port, daemon.log
    clients: list[socket.socket] = []
    try:
        daemon.start()
        # Three waves of more connections than the daemon has descriptors for.
        for _ in range(3):
            for _ in range(LIMIT):
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                clients.append(client)
            time.sleep(0.5)
        assert daemon.proc is not None and daemon.proc.poll() is None
        for client in clients:
            client.close()
        clients.clear()
        deadline = time.monotonic() + 10
        while not daemon.healthy():  # it serves again once the sockets are gone
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
        daemon.stop()
