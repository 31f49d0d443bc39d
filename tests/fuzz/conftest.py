"""Fuzz suite fixtures: one `twistd chatire` child per module, started and stopped by PID."""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatire.config import SCALAR_OPTIONS, attribute, parse_value
from chatire.testing import QUOTAS_OFF, BlockingDaemon

PASSWORD = "fuzzing horse 42"  # of every fuzzer's users
#: ``CHATIRE_FUZZ_EXPLORE=1``: fresh random cases each run; else the same cases each
#: time (``make test`` stays reproducible).
EXPLORE = os.environ.get("CHATIRE_FUZZ_EXPLORE") == "1"


def blocking_request(base_url: str, method: str, path: str, data: bytes | None = None,
                     token: str | None = None) -> tuple[int, bytes]:
    """One HTTP call, blocking (for fuzzers in a thread of their own): (status, raw body)."""
    request = urllib.request.Request(base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def blocking_call(base_url: str, method: str, path: str, body: Any = None,
                  token: str | None = None) -> tuple[int, Any]:
    """A blocking JSON call (ASCII JSON: a lone surrogate goes as its escape)."""
    data = None if body is None else json.dumps(body, ensure_ascii=True).encode()
    status, raw = blocking_request(base_url, method, path, data, token)
    return status, json.loads(raw) if raw else None


class SyncDaemon(BlockingDaemon):
    """A daemon started and stopped without the reactor (for blocking fuzzers), quotas off."""

    def __init__(self, workdir: Path, db: str, bus: str = "memory://", *options: str,
                 **kwargs: Any) -> None:
        super().__init__(workdir, db, bus, *QUOTAS_OFF, *options, **kwargs)

    def call(self, method: str, path: str, body: Any = None,
             token: str | None = None) -> tuple[int, Any]:
        """A blocking JSON call to the daemon (ASCII JSON: a lone surrogate as its escape)."""
        return blocking_call(self.base_url, method, path, body, token)

    def request(self, method: str, path: str, data: bytes | None = None,
                token: str | None = None) -> tuple[int, bytes]:
        """A blocking call with a raw body: (status, raw reply body)."""
        return blocking_request(self.base_url, method, path, data, token)

    def log_problems(self) -> list[str]:
        """Lines of the daemon's log that tell of a bug: tracebacks, errors, criticals."""
        log = self.log.read_text(errors="replace")
        return [line for line in log.splitlines() if "Traceback" in line or "Unhandled" in line
                or "#critical" in line or "#error" in line]

    def sign_up(self, password: str = "fuzzing horse") -> tuple[str, str]:
        """A fresh user: (username, token)."""
        name = "f" + secrets.token_hex(6)
        assert self.call("POST", "/api/auth/register",
                         {"username": name, "password": password})[0] == 201
        status, body = self.call("POST", "/api/auth/token",
                                 {"username": name, "password": password})
        assert status == 200, body
        return name, body["token"]


#: Every per-user and per-address limit off: the fuzzers sign up, sign in and create
#: chats far faster than a person (only the options this daemon has are used).
UNLIMITED = {"send-rate": "0", "signup-rate": "0", "chat-rate": "0",
             "login-failures": "1000000", "login-failures-per-address": "1000000",
             "max-sockets-per-user": "0"}


def unlimited() -> list[str]:
    """The twistd options of UNLIMITED."""
    known = {option for option, _, _ in SCALAR_OPTIONS}
    return [arg for option, value in UNLIMITED.items() if option in known
            for arg in (f"--{option}", value)]


def unlimited_fields() -> dict[str, Any]:
    """UNLIMITED as Config fields (for in-process daemons: ``attrs.evolve``, ``make_daemon``)."""
    return {attribute(option): parse_value(option, kind, UNLIMITED[option])
            for option, kind, _ in SCALAR_OPTIONS if option in UNLIMITED}


class Member:
    """A user of the daemon under test with a chat of theirs."""

    def __init__(self, daemon: SyncDaemon) -> None:
        self.username, self.token = daemon.sign_up(PASSWORD)
        status, body = daemon.call("POST", "/api/chats", {"title": "text"}, token=self.token)
        assert status == 201, body
        self.chat: str = body["chat"]["uri"]


def valid_value(field: str) -> Any:
    """A value the API accepts in ``field`` (each call a fresh one where it must be unique)."""
    values: dict[str, Any] = {"username": "f" + secrets.token_hex(6), "password": PASSWORD,
                              "display_name": "Fuzz", "title": "fuzz", "message": "hello",
                              "client_id": secrets.token_hex(8), "role": "member",
                              "join": "link"}
    assert field in values, f"the text fuzzer needs a valid value for {field!r}"
    return values[field]


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncDaemon]:
    """A daemon on SQLite with the shipped limits except the send rate and the per-address
    sign-in failures (0: off; every fuzzed request comes from 127.0.0.1)."""
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    daemon = SyncDaemon(workdir, f"sqlite:///{workdir / 'fuzz.db'}", "memory://",
                        "--send-rate", "0", "--login-failures-per-address", "0",
                        "--max-frame-bytes", "16384",
                        # A relay (nothing listens there: a send fails at once), so an
                        # e-mail address is a valid setting for the schema fuzz.
                        "--smtp", "smtp://127.0.0.1:9", name="fuzz")
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
