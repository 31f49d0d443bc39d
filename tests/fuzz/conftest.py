"""Fuzz suite fixtures: one `twistd chatire` child per module, started and stopped by PID."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import REPO, DaemonProcess

#: ``CHATIRE_FUZZ_EXPLORE=1``: fresh random cases each run; else the same cases each
#: time (``make test`` stays reproducible).
EXPLORE = os.environ.get("CHATIRE_FUZZ_EXPLORE") == "1"


class SyncDaemon(DaemonProcess):
    """A DaemonProcess started and stopped without the reactor (for blocking fuzzers)."""

    def start_blocking(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), cwd=REPO, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon not healthy in {timeout} s: {self.tail()}")

    def stop_blocking(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()  # our child, by its PID
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def call(self, method: str, path: str, body: Any = None,
             token: str | None = None) -> tuple[int, Any]:
        """A blocking JSON call to the daemon."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def sign_up(self, password: str = "fuzzing horse") -> tuple[str, str]:
        """A fresh user: (username, token)."""
        name = "f" + secrets.token_hex(6)
        assert self.call("POST", "/api/auth/register",
                         {"username": name, "password": password})[0] == 201
        status, body = self.call("POST", "/api/auth/token",
                                 {"username": name, "password": password})
        assert status == 200, body
        return name, body["token"]


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncDaemon]:
    """A daemon on SQLite with the shipped limits except the send rate and the per-address
    sign-in failures (0: off; every fuzzed request comes from 127.0.0.1)."""
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    daemon = SyncDaemon(workdir, f"sqlite:///{workdir / 'fuzz.db'}", "memory://",
                        "--send-rate", "0", "--login-failures-per-address", "0",
                        "--max-frame-bytes", "16384", name="fuzz")
    daemon.start_blocking()
    try:
        yield daemon
    finally:
        daemon.stop_blocking()
