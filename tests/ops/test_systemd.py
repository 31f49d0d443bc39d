"""systemd: the unit files pass `systemd-analyze verify`; the daemon serves on a socket passed
the way systemd passes it (fd 3, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
import treq

from tests.support.client import Api, Socket
from tests.support.daemons import REPO, DaemonProcess

UNITS = REPO / "contrib" / "systemd"
TWISTD = str(Path(sys.executable).with_name("twistd"))

#: Moves the inherited socket to fd 3 and sets what systemd sets, then becomes twistd:
#: LISTEN_PID must be the pid of the process that reads it, so it is set after the fork.
WRAPPER = """\
import os, sys
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
        service.replace("/opt/chatire/venv/bin/twistd", TWISTD))
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


class ActivatedDaemon(DaemonProcess):
    """`twistd chatire --listen systemd:...` on a socket this test bound, as systemd would."""

    def __init__(self, workdir: Path, listener: socket.socket, name: str) -> None:
        super().__init__(workdir, f"sqlite:///{workdir / 'sd.db'}", "memory://", name=name)
        self.listener = listener
        self.port = listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-c", WRAPPER, str(self.listener.fileno()), TWISTD, "-n",
                "--pidfile=", "chatire", "--listen", "systemd:domain=INET:index=0",
                "--db", self.db, "--bus", self.bus, "--shutdown-timeout", "3"]

    async def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 (fork+exec returns at once)
                self.command(), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                pass_fds=(self.listener.fileno(),))
        for _ in range(int(timeout / 0.1)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.tail()}")
            # The socket listens from the start: this waits in the backlog until twistd runs.
            try:
                response = await treq.get(self.base_url + "/healthz", persistent=False,
                                          timeout=1)
                await response.content()
            except Exception:  # not served within a second: look at the process again
                continue
            if response.code == 200:
                return
        raise RuntimeError(f"daemon not healthy in {timeout} s: {self.tail()}")


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
