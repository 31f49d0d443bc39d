"""The `chatire` admin command as a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool

from chatire.admin import main
from chatire.store.schema import MIGRATIONS
from tests.support.client import Api, Socket
from tests.support.daemons import REPO, free_port, fresh_vhost
from tests.support.services import fresh_database

LATEST = len(MIGRATIONS)
CHATIRE = str(Path(sys.executable).with_name("chatire"))


def chatire(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            script: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the admin command (the console script, or `python -m chatire`); blocking."""
    command = [CHATIRE] if script else [sys.executable, "-m", "chatire"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATIRE_")}
    return subprocess.run([*command, *args], input=stdin if stdin is not None else "",
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**clean, **(env or {})})


async def run(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """The same, off the reactor thread (for tests that also talk to a daemon)."""
    return await deferToThreadPool(reactor, reactor.getThreadPool(),
                                   lambda: chatire(*args, **kw))


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatire: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest_twisted.ensureDeferred
async def test_admin_commands_against_a_daemon(db_url: str, make_daemon: Any) -> None:
    db = ("--db", db_url)
    if db_url.startswith("sqlite"):
        result = await run("check", *db)
        assert result.returncode == 1 and "no SQLite database" in result.stdout
    result = await run("migrate", *db, script=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"schema migrated from version 0 to {LATEST}\n"
    result = await run("migrate", env={"CHATIRE_DB": db_url})  # from the environment
    assert (result.returncode, result.stdout) == (0, f"schema up to date (version {LATEST})\n")
    result = await run("check", *db)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok (schema version {LATEST})" in result.stdout and "bus memory://: ok" in result.stdout

    result = await run("create-user", "Alice", "--password-stdin", "--display-name",
                       "Alice A.", *db, stdin="first password\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("created user Alice (id ")
    result = await run("create-user", "alice", "--password-stdin", *db, stdin="x" * 9 + "\n")
    assert result.returncode == 1 and "taken" in one_error_line(result)
    if db_url.startswith("sqlite"):  # the same checks whatever the store
        result = await run("create-user", "bad name", "--password-stdin", *db, stdin="x" * 9)
        assert result.returncode == 1 and "username" in one_error_line(result)
        result = await run("create-user", "bob", "--password-stdin", *db, stdin="short\n")
        assert result.returncode == 1 and "password" in one_error_line(result)

    daemon = await make_daemon(db=db_url)
    api = Api(daemon.base_url)
    status, body = await api.call("POST", "/api/auth/token",
                                  {"username": "alice", "password": "first password"})
    assert status == 200 and body["user"]["display_name"] == "Alice A."
    token = body["token"]

    result = await run("set-password", "alice", "--password-stdin", "--keep-tokens", *db,
                       stdin="second password\n")
    assert (result.returncode, result.stdout) == (0, "password of Alice set\n"), result.stderr
    status, _ = await api.call("GET", "/api/me", token=token)
    assert status == 200  # --keep-tokens
    status, _ = await api.call("POST", "/api/auth/token",
                               {"username": "alice", "password": "first password"})
    assert status == 401
    status, _ = await api.call("POST", "/api/auth/token",
                               {"username": "alice", "password": "second password"})
    assert status == 200

    result = await run("revoke-tokens", "ALICE", *db)
    assert (result.returncode, result.stdout) == (0, "revoked 2 token(s) of Alice\n")
    status, _ = await api.call("GET", "/api/me", token=token)
    assert status == 401
    if db_url.startswith("sqlite"):
        result = await run("revoke-tokens", "nobody", *db)
        assert result.returncode == 1 and "no user named 'nobody'" in one_error_line(result)
        result = await run("set-password", "nobody", "--password-stdin", *db, stdin="y" * 9)
        assert result.returncode == 1 and "no user" in one_error_line(result)
        # The bus cannot be reached: the store's revocation stands, and it says so.
        status, _ = await api.call("POST", "/api/auth/token",
                                   {"username": "alice", "password": "second password"})
        assert status == 200
        result = await run("revoke-tokens", "alice", *db, "--timeout", "1",
                           "--bus", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
        assert result.returncode == 1
        assert "revoked 1 token(s) in the store" in one_error_line(result)


def test_usage_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'u.db'}"
    result = chatire("check", "--db", "mysql://x")  # as a process once
    assert result.returncode == 2 and "unsupported URL scheme" in result.stderr
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal, and empty
    for args in ([], ["frobnicate"], ["check", "--db", db, "--bus", "kafka://x"],
                 ["create-user", "carol", "--db", db],  # no terminal, no --password-stdin
                 ["create-user", "carol", "--password-stdin", "--db", db]):  # empty stdin
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 2, (args, capsys.readouterr().err)
    assert not (tmp_path / "u.db").exists()


def test_check_fails_with_one_line_per_unreachable_service(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = chatire("check", "--db", f"postgresql://root@127.0.0.1:{port}/x",
                     "--bus", f"amqp://guest:secret@127.0.0.1:{port}/%2F", "--timeout", "1")
    assert result.returncode == 1
    assert one_error_line(result) == "chatire: check failed"
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all("FAILED" in line for line in lines), lines
    assert "secret" not in result.stdout + result.stderr  # no password in messages


@pytest.mark.postgres
def test_check_gives_each_host_of_a_list_its_timeout() -> None:
    """A silent first host (it takes the connection and never answers) costs one --timeout;
    the second host answers; a silent host alone fails with the reason, in time."""
    import socket
    import time

    with fresh_database() as url, socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshakes; nobody ever answers
        port = silent.getsockname()[1]
        name = url.rsplit("/", 1)[1]
        started = time.monotonic()
        result = chatire("check", "--db", f"postgresql://root@127.0.0.1:{port},127.0.0.1:5432/"
                         f"{name}", "--timeout", "1")
        assert time.monotonic() - started < 10
        assert f"reachable, schema at version 0 of {LATEST}" in result.stdout, result
        result = chatire("check", "--db", f"postgresql://root@127.0.0.1:{port}/{name}",
                         "--timeout", "1")
        assert f"127.0.0.1:{port}: no answer within 1 s" in result.stdout, result
        assert "Traceback" not in result.stderr and "canceller" not in result.stderr


@pytest.mark.rabbitmq
def test_check_fails_at_once_when_the_broker_refuses(tmp_path: Path) -> None:
    """A wrong password or an unknown vhost is final: no waiting out --timeout."""
    import time

    from tests.support.services import AMQP_URL, require

    require("RabbitMQ", 5672)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert chatire("migrate", "--db", db).returncode == 0
    good = AMQP_URL.rsplit("/", 1)[0]
    wrong_password = good.replace(":guest@", ":not-the-password@") + "/%2F"
    assert wrong_password != good + "/%2F"
    for bus, why in ((wrong_password, "ACCESS_REFUSED"),
                     (good + "/no-such-vhost-here", "NOT_ALLOWED")):
        started = time.monotonic()
        result = chatire("check", "--db", db, "--bus", bus, "--timeout", "30")
        took = time.monotonic() - started
        assert result.returncode == 1 and took < 10, (took, result.stdout)
        assert one_error_line(result) == "chatire: check failed"
        line = result.stdout.strip().splitlines()[-1]
        assert "FAILED: the broker refused the connection" in line and why in line, line
        assert "not-the-password" not in result.stdout + result.stderr


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_revoke_tokens_closes_open_sockets_through_the_bus(make_daemon: Any) -> None:
    with fresh_database() as db, fresh_vhost() as (_, amqp):
        daemon = await make_daemon(db=db, bus=amqp)
        user = await Api(daemon.base_url).user()
        socket = await Socket.open(daemon.base_url, user.token)
        result = await run("check", "--db", db, "--bus", amqp)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ok" in result.stdout.splitlines()[1]
        result = await run("revoke-tokens", user.name, "--db", db, "--bus", amqp)
        assert result.returncode == 0, result.stderr
        closed = socket.closed
        closed.addTimeout(5, reactor)
        assert await closed == 4001
        await daemon.stopService()
