"""Browser suite fixtures: the chatire daemon as a subprocess and Debian's headless chromium."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatire.testing import QUOTAS_OFF, BlockingDaemon

CHROMIUM = "/usr/bin/chromium"
#: axe-core, installed by .ci/ensure-browser (git-ignored); the accessibility checks inject it.
AXE = Path(__file__).resolve().parent / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
class Daemon(BlockingDaemon):
    """One ``twistd chatire`` process on a fixed port and SQLite file; stop/start keep both."""

    def __init__(self, workdir: Path, *options: str) -> None:
        self.db_path = workdir / "chatire.db"
        super().__init__(workdir, f"sqlite:///{self.db_path}", "memory://", *options)

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
    server = Daemon(tmp_path_factory.mktemp("chatire-browser"), "--send-rate", "0", *QUOTAS_OFF)
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


@pytest.fixture
def axe_page(browser: Any, daemon: Daemon) -> Iterator[Callable[[str], Any]]:
    """Pages that may take axe-core as a script tag (the CSP is not under test here)."""
    if not AXE.exists():
        pytest.skip("axe-core is missing (make browser installs it)")
    contexts: list[Any] = []
    errors: list[str] = []

    def make(scheme: str, width: int = 1280, height: int = 800) -> Any:
        context = browser.new_context(
            base_url=daemon.base_url, viewport={"width": width, "height": height},
            color_scheme=scheme, reduced_motion="reduce", locale="en-GB", timezone_id="UTC",
            bypass_csp=True)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
