"""Browser suite fixtures: the chatire daemon as a subprocess and Debian's headless chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def twistd() -> str:
    beside = Path(sys.executable).with_name("twistd")
    found = str(beside) if beside.exists() else shutil.which("twistd")
    if not found:
        pytest.skip("twistd is not installed")
    return found


class Daemon:
    """One ``twistd chatire`` process on a fixed port and SQLite file; stop/start keep both."""

    def __init__(self, workdir: Path, *options: str) -> None:
        self.port = free_port()
        self.db = workdir / "chatire.db"
        self.log = workdir / "daemon.log"
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None, "already running"
        command = [twistd(), "-n", "--pidfile=", "chatire",
                   "--listen", f"tcp:{self.port}:interface=127.0.0.1",
                   "--db", f"sqlite:///{self.db}", *self.options]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"daemon did not become healthy:\n{self.tail()}")

    def stop(self) -> None:
        """Stop our process by its PID (SIGTERM, then SIGKILL if it lingers)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- a tiny HTTP client for seeding data -----------------------------------------

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path} -> {e.code} {e.read()!r}") from None

    def user(self, username: str, display_name: str, password: str = "correct horse") -> str:
        """Register a user and return a fresh token of theirs."""
        self.call("POST", "/api/auth/register",
                  {"username": username, "password": password, "display_name": display_name})
        return str(self.call("POST", "/api/auth/token",
                             {"username": username, "password": password})["token"])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    # No send, sign-up or chat rate limits: the tests seed data faster than people do.
    server = Daemon(tmp_path_factory.mktemp("chatire-browser"), "--send-rate", "0",
                    "--signup-rate", "0", "--chat-rate", "0")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (make browser installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any, daemon: Daemon) -> Iterator[Callable[..., Any]]:
    """Open pages in fresh browser contexts (one per simulated person); page errors fail."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make(width: int = 1280, height: int = 800) -> Any:
        context = browser.new_context(
            base_url=daemon.base_url, viewport={"width": width, "height": height},
            color_scheme="light", locale="en-GB", timezone_id="UTC")
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
