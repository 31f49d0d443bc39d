"""Run `twistd chatire` as a real child process for tests and benchmarks, on fresh services.

One runner for the test suites and the benchmark (importable by both, like
``treq.testing``): start a daemon on a free port, wait until ``/healthz`` answers, stop
it by its PID with a signal and a deadline (SIGKILL if it lingers).  `Daemon` waits in
the reactor (Twisted, treq); `BlockingDaemon` sleeps (for code outside a reactor).
`fresh_database` and `fresh_vhost` give a PostgreSQL database and a RabbitMQ vhost of
one's own, removed afterwards.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg2

#: The source tree this chatire is imported from: the daemons' PYTHONPATH and directory.
SOURCE_TREE = Path(__file__).resolve().parents[1]
#: Test and benchmark clients sign up and make chats from one address far faster than
#: people do; a test of these quotas turns them on again (a later option wins).
QUOTAS_OFF: tuple[str, ...] = ("--signup-rate", "0", "--chat-rate", "0")
#: The administrator's PostgreSQL database (CREATE/DROP DATABASE) and the RabbitMQ URL.
PG_ADMIN = os.environ.get("CHATIRE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("CHATIRE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def twistd() -> str:
    """The `twistd` of this Python environment."""
    return str(Path(sys.executable).with_name("twistd"))


def _deadline(seconds: float) -> Iterator[None]:
    """Yield until ``seconds`` have passed (the caller waits between turns)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield


class _Process:
    """What both flavours share: the command, its environment, the PID, the log."""

    def __init__(self, workdir: Path, db: str, bus: str = "memory://", *options: str,
                 name: str = "daemon", port: int | None = None, listen: str | None = None,
                 logfile: Path | None = None, launcher: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, pass_fds: Sequence[int] = (),
                 tree: Path = SOURCE_TREE) -> None:
        self.port = port if port is not None else free_port()
        self.db, self.bus, self.options = db, bus, options
        self.listen = listen or f"tcp:{self.port}:interface=127.0.0.1"
        #: The daemon's log: twistd's --logfile if given, else its standard output.
        self.log = logfile or workdir / f"{name}.log"
        self.output = workdir / f"{name}.out" if logfile else self.log
        self.logfile = logfile
        self.launcher, self.extra_env, self.pass_fds = tuple(launcher), env or {}, pass_fds
        self.tree = tree
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running child's PID."""
        assert self.proc is not None, "not running"
        return self.proc.pid

    def command(self) -> list[str]:
        """The command line: `twistd -n` (with --logfile if given) and the application."""
        logfile = ["--logfile", str(self.logfile)] if self.logfile else []
        return [*self.launcher, twistd(), "-n", "--pidfile=", *logfile, *self.application()]

    def application(self) -> list[str]:
        """twistd's application: `chatire` with our listener, store, bus and options."""
        return ["chatire", "--listen", self.listen, "--db", self.db, "--bus", self.bus,
                *self.options]

    def environment(self) -> dict[str, str]:
        """Our environment, with this source tree importable, and the extra variables."""
        return {**os.environ, "PYTHONPATH": str(self.tree), **self.extra_env}

    def spawn(self) -> subprocess.Popen[bytes]:
        """Fork and exec the daemon (returns at once); its output goes to `output`."""
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), cwd=self.tree, env=self.environment(),
                                         stdout=out, stderr=subprocess.STDOUT,
                                         pass_fds=tuple(self.pass_fds))
        return self.proc

    def _starting(self, timeout: float) -> Iterator[None]:
        """The turns of the wait for health; raises when the child exits or time is up."""
        for turn in _deadline(timeout):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.tail()}")
            yield turn
        proc = self._signal(signal.SIGKILL)  # not left behind
        if proc is not None:
            proc.wait()
        raise RuntimeError(f"daemon not healthy in {timeout} s: {self.tail()}")

    def _signal(self, sig: int) -> subprocess.Popen[bytes] | None:
        """Signal our child by its PID (if it still runs); forget it."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
        return proc

    def tail(self, lines: int = 30) -> str:
        """The last lines of the daemon's log (and its standard output, if apart)."""
        text = ""
        for path in dict.fromkeys((self.log, self.output)):
            try:
                text += path.read_text(errors="replace")
            except OSError:
                pass
        return "\n".join(text.splitlines()[-lines:])


class Daemon(_Process):
    """One `twistd -n chatire` child, waited for in the reactor; same port across restarts."""

    async def healthy(self, path: str = "/healthz") -> bool:
        """Whether the daemon answers 200 on ``path`` within a second."""
        import treq

        try:
            response = await treq.get(self.base_url + path, persistent=False, timeout=1)
            await response.content()
        except Exception:  # not listening yet, or not served within a second
            return False
        return bool(response.code == 200)

    async def start(self, timeout: float = 30.0) -> None:
        """Spawn the daemon and wait until /healthz answers 200."""
        self.spawn()
        for _ in self._starting(timeout):
            if await self.healthy():
                return
            await sleep(0.1)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal our child by its PID and wait for it; SIGKILL if it lingers."""
        proc = self._signal(sig)
        if proc is None:
            return None
        for _ in _deadline(timeout):
            if proc.poll() is not None:
                return proc.returncode
            await sleep(0.05)
        proc.kill()
        return proc.wait()


class BlockingDaemon(_Process):
    """One `twistd -n chatire` child, waited for by sleeping (outside a reactor)."""

    def healthy(self, path: str = "/healthz") -> bool:
        """Whether the daemon answers 200 on ``path`` within two seconds."""
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:  # URLError and HTTPError are OSErrors
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Spawn the daemon and wait until /healthz answers 200."""
        self.spawn()
        for _ in self._starting(timeout):
            if self.healthy():
                return
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal our child by its PID and wait for it; SIGKILL if it lingers."""
        proc = self._signal(sig)
        if proc is None:
            return None
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


async def sleep(seconds: float) -> None:
    """Wait in the reactor."""
    from twisted.internet import reactor, task

    await task.deferLater(reactor, seconds, lambda: None)


@contextmanager
def fresh_database(admin_url: str = PG_ADMIN, prefix: str = "chatire_test") -> Iterator[str]:
    """A new, empty PostgreSQL database; its URL; dropped afterwards (blocking)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run rabbitmqctl, bounded in time (blocking)."""
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=timeout).stdout


@contextmanager
def fresh_vhost(amqp_url: str = AMQP_URL, prefix: str = "chatire-test") -> Iterator[str]:
    """A RabbitMQ vhost of our own for guest; the amqp:// URL to it; deleted afterwards."""
    name = f"{prefix}-{secrets.token_hex(5)}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield amqp_url.rsplit("/", 1)[0] + "/" + name
    finally:
        # (a vhost of 20,000 exchanges takes a minute or more on a busy broker)
        rabbitmqctl("delete_vhost", name, timeout=600)
