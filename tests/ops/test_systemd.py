"""systemd: the unit files pass `systemd-analyze verify`; the daemon serves on a socket passed
the way systemd passes it (fd 3, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import pytest_twisted
import treq

from chatire.testing import Daemon, twistd
from tests.support.client import Api, Socket
from tests.support.daemons import REPO, free_port, sleep

UNITS = REPO / "contrib" / "systemd"

#: Moves the inherited socket to fd 3 and sets what systemd sets, then becomes twistd:
#: LISTEN_PID must be the pid of the process that reads it, so it is set after the fork.
WRAPPER = """\
import ctypes, os, sys
if os.environ.pop("TEST_MEMORY_DENY_WRITE_EXECUTE", "") == "yes":
    # What systemd does for MemoryDenyWriteExecute=yes on Linux 6.3+: PR_SET_MDWE with
    # PR_MDWE_REFUSE_EXEC_GAIN, kept across fork and exec.
    if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
        sys.exit("PR_SET_MDWE failed: errno %d" % ctypes.get_errno())
if "TEST_UMASK" in os.environ:
    os.umask(int(os.environ.pop("TEST_UMASK"), 8))
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="chatire")
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    service = (UNITS / "chatire.service").read_text()
    # verify checks that ExecStart's program exists: point it at this venv's twistd.
    (tmp_path / "chatire.service").write_text(
        service.replace("/opt/chatire/venv/bin/twistd", twistd()))
    shutil.copy(UNITS / "chatire.socket", tmp_path / "chatire.socket")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "chatire.service"),
         str(tmp_path / "chatire.socket")],
        capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "chatire" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_units_run_twistd_unprivileged_hardened_and_socket_activated() -> None:
    service = (UNITS / "chatire.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", service, re.MULTILINE))
    exec_start = re.search(r"^ExecStart=((?:.*\\\n)*.*)$", service, re.MULTILINE)
    assert exec_start is not None
    command = exec_start.group(1).replace("\\\n", " ").split()
    assert command[:4] == ["/opt/chatire/venv/bin/twistd", "--nodaemon", "--pidfile=",
                           "chatire"]
    assert command[command.index("--listen") + 1] == "systemd:domain=INET:index=0"
    assert settings["DynamicUser"] == "yes" or settings.get("User") == "chatire"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "PrivateTmp": "yes", "ProtectHome": "yes",
                       "StateDirectory": "chatire", "Restart": "on-failure",
                       "Requires": "chatire.socket"}.items():
        assert settings[key] == value, key
    assert "CHATIRE_DB=sqlite:////var/lib/chatire/chatire.db" in service
    # URLs (and their passwords) come from CHATIRE_* variables that twistd reads itself,
    # never expanded into the command line where `ps` shows them.
    assert not {"--db", "--bus"} & set(command)
    assert "${CHATIRE_" not in exec_start.group(1) and "$CHATIRE_" not in exec_start.group(1)
    socket_unit = (UNITS / "chatire.socket").read_text()
    assert re.search(r"^ListenStream=127\.0\.0\.1:\d+$", socket_unit, re.MULTILINE)
    # The daemon's default stop deadline fits in systemd's.
    assert float(command[command.index("--shutdown-timeout") + 1]) < float(
        settings["TimeoutStopSec"])


class ActivatedDaemon(Daemon):
    """`twistd chatire --listen systemd:...` on a socket this test bound, as systemd would.

    The socket listens from the start: a health probe waits in its backlog until twistd
    runs (the runner's probe gives up after a second and looks at the process again)."""

    def __init__(self, workdir: Path, listener: socket.socket, name: str) -> None:
        fd = listener.fileno()
        super().__init__(workdir, f"sqlite:///{workdir / 'sd.db'}", "memory://",
                         "--shutdown-timeout", "3", name=name,
                         port=listener.getsockname()[1], listen="systemd:domain=INET:index=0",
                         launcher=(sys.executable, "-c", WRAPPER, str(fd)), pass_fds=(fd,))


@pytest_twisted.ensureDeferred
async def test_daemon_serves_on_a_socket_passed_by_systemd(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    first = ActivatedDaemon(tmp_path, listener, "first")
    second = ActivatedDaemon(tmp_path, listener, "second")
    try:
        await first.start()
        assert "systemd:domain=INET:index=0" in first.log.read_text()
        api = Api(first.base_url)
        alice = await api.user()
        uri = await alice.new_chat()
        ws = await Socket.open(first.base_url, alice.token)
        await ws.subscribe(uri)
        await alice.post(uri, "through the inherited socket")
        assert (await ws.next_of("message"))["message"] == "through the inherited socket"

        # Restart: systemd keeps the socket open, so a request made while no daemon
        # runs waits in the backlog and is answered by the next daemon.
        assert await first.stop(signal.SIGTERM) == -signal.SIGTERM
        assert await ws.closed == 1001
        waiting = treq.get(first.base_url + "/api/me", persistent=False,
                           headers={"Authorization": f"Bearer {alice.token}"})
        await second.start()
        response = await waiting
        assert response.code == 200
        assert (await response.json())["user"]["id"] == alice.id
    finally:
        for daemon in (first, second):
            await daemon.stop()
        listener.close()


def unit_exec_start(service: str) -> list[str]:
    """The unit's ExecStart as an argument list (continuation lines joined)."""
    found = re.search(r"^ExecStart=((?:.*\\\n)*.*)$", service, re.MULTILINE)
    assert found is not None
    return shlex.split(found.group(1).replace("\\\n", " "))


def unit_environment(service: str, env_file: Path) -> dict[str, str]:
    """Environment= of the unit, then its EnvironmentFile= (read later, so it wins)."""
    env: dict[str, str] = {}
    for value in re.findall(r"^Environment=(.*)$", service, re.MULTILINE):
        for assignment in shlex.split(value):
            key, _, val = assignment.partition("=")
            env[key] = val
    assert re.search(r"^EnvironmentFile=-/etc/chatire/chatire\.env$", service, re.MULTILINE)
    for line in env_file.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, val = line.partition("=")
            env[key.strip()] = val.strip()
    return env


class UnitDaemon(ActivatedDaemon):
    """contrib/systemd/chatire.service's ExecStart with its environment and env file, on a
    socket passed as systemd passes it, under its MemoryDenyWriteExecute and UMask."""

    def __init__(self, workdir: Path, listener: socket.socket, env_file: Path) -> None:
        super().__init__(workdir, listener, "unit")
        self.service = (UNITS / "chatire.service").read_text()
        self.settings = dict(re.findall(r"^(\w+)=(.*)$", self.service, re.MULTILINE))
        self.env_file = env_file

    def command(self) -> list[str]:
        command = unit_exec_start(self.service)
        assert command[0] == "/opt/chatire/venv/bin/twistd"
        return [*self.launcher, twistd(), *command[1:]]

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
                **unit_environment(self.service, self.env_file),
                "TEST_MEMORY_DENY_WRITE_EXECUTE":
                    self.settings.get("MemoryDenyWriteExecute", "no"),
                "TEST_UMASK": self.settings.get("UMask", "0022")}


async def _get(url: str) -> tuple[int, bytes]:
    response = await treq.get(url, persistent=False)
    return response.code, await response.content()


@pytest_twisted.ensureDeferred
async def test_the_units_command_runs_with_its_env_file(tmp_path: Path) -> None:
    """Issue 19, points 8 to 10, as an operator meets them under the unit as shipped."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    metrics_port = free_port()
    env_file = tmp_path / "chatire.env"
    env_file.write_text(f"""# as /etc/chatire/chatire.env
CHATIRE_DB=sqlite:///{tmp_path / 'unit.db'}
CHATIRE_METRICS_LISTEN=tcp:{metrics_port}:interface=127.0.0.1
CHATIRE_MAX_MESSAGE_CHARS=10
""")
    daemon = UnitDaemon(tmp_path, listener, env_file)
    await daemon.start()
    try:
        operator = f"http://127.0.0.1:{metrics_port}"
        # 10: the release on /metrics (operator port only), probes on both ports.
        status, text = await _get(operator + "/metrics")
        assert status == 200
        assert f'chatire_build_info{{version="{version("chatire")}"}} 1.0' in text.decode()
        assert (await _get(daemon.base_url + "/metrics"))[0] == 404
        for base in (daemon.base_url, operator):
            assert await _get(base + "/livez") == (200, b'{"status":"ok"}')
            assert (await _get(base + "/healthz"))[0] == 200

        # 8: the env file's options apply; argon2 and the rest run under
        # MemoryDenyWriteExecute (a sign-up hashes a password).
        api = Api(daemon.base_url)
        alice = await api.user()
        uri = await alice.new_chat()
        status, body = await api.call("POST", f"/api/chats/{uri}/messages",
                                      {"message": "x" * 11}, token=alice.token)
        assert status == 400, body
        ws = await Socket.open(daemon.base_url, alice.token)
        await ws.subscribe(uri)
        await alice.post(uri, "under MDWE")
        assert (await ws.next_of("message"))["message"] == "under MDWE"

        # 9: SIGHUP neither stops nor disturbs it.
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            if "still running" in daemon.log.read_text():
                break
            await sleep(0.05)
        assert daemon.proc.poll() is None, daemon.tail()
        assert (await _get(daemon.base_url + "/livez"))[0] == 200
        assert ws.protocol is not None and ws.protocol.state == ws.protocol.STATE_OPEN

        assert await daemon.stop(signal.SIGTERM) == -signal.SIGTERM
        assert await ws.closed == 1001
        records = [json.loads(line) for line in daemon.log.read_text().splitlines()]
        access = [r for r in records if r["namespace"] == "chatire.access"]
        assert not [r for r in access if r["path"] in ("/livez", "/healthz")]
        sockets = [r for r in access if r["path"] == "/ws"]
        assert [(r["status"], r["close"]) for r in sockets] == [(101, 1001)], sockets
        assert (tmp_path / "unit.db").stat().st_mode & 0o077 == 0  # UMask=0077
    finally:
        await daemon.stop()
        listener.close()


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    service = (UNITS / "chatire.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", service, re.MULTILINE))
    assert settings["MemoryDenyWriteExecute"] == "yes"
    assert settings["IPAddressDeny"] == "any" and settings["IPAddressAllow"] == "localhost"
    unit = tmp_path / "chatire.service"
    unit.write_text(service.replace("/opt/chatire/venv/bin/twistd", twistd()))
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for chatire\.service: ([\d.]+) (\w+)",
                      result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert found.group(2) == "OK" and float(found.group(1)) <= 1.5, found.group(0)
    assert not [line for line in result.stdout.splitlines()
                if line.startswith("✗") and "MemoryDenyWriteExecute=" in line]
    # Localhost only; systemd still counts 0.1 for an allow list that is not empty.
    assert "does not define an IP address allow list" not in result.stdout
