"""`twistd chatire` as real processes for tests: start on a free port, stop by PID."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import treq
from twisted.internet import reactor, task

from tests.support.services import AMQP_URL, require

REPO = Path(__file__).resolve().parents[2]


#: Test clients sign up and make chats from one address far faster than people do;
#: a test of these quotas turns them on again (a later option wins).
QUOTAS_OFF = ("--signup-rate", "0", "--chat-rate", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


class DaemonProcess:
    """One `twistd -n chatire` child process; its port stays the same across restarts."""

    def __init__(self, workdir: Path, db: str, bus: str = "memory://", *options: str,
                 name: str = "daemon") -> None:
        self.port = free_port()
        self.db, self.bus, self.options = db, bus, options
        self.log = workdir / f"{name}.log"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [str(Path(sys.executable).with_name("twistd")), "-n", "--pidfile=", "chatire",
                "--listen", f"tcp:{self.port}:interface=127.0.0.1", "--db", self.db,
                "--bus", self.bus, *QUOTAS_OFF, *self.options]

    async def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 (fork+exec returns at once)
                self.command(), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        for _ in range(int(timeout / 0.1)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.tail()}")
            try:
                response = await treq.get(self.base_url + "/healthz", persistent=False)
                await response.content()
                if response.code == 200:
                    return
            except Exception:  # not listening yet
                pass
            await sleep(0.1)
        raise RuntimeError(f"daemon not healthy in {timeout} s: {self.tail()}")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal our child by its PID and wait for it; SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
        for _ in range(int(timeout / 0.05)):
            if proc.poll() is not None:
                return proc.returncode
            await sleep(0.05)
        proc.kill()
        proc.wait()
        return proc.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl (blocking: for fixtures, outside the test's reactor work)."""
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


@contextmanager
def fresh_vhost() -> Iterator[tuple[str, str]]:
    """A RabbitMQ vhost of our own: (its name, the amqp:// URL to it); deleted afterwards."""
    require("RabbitMQ", 5672)
    name = f"chatire-test-{secrets.token_hex(5)}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name, AMQP_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        rabbitmqctl("delete_vhost", name)
