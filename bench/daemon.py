"""Daemons under test: `twistd chatire` processes, their store and bus, their /proc figures."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[1]
#: The source tree the daemons run from (BENCH_DAEMON_TREE: another checkout, for A/B runs).
DAEMON_TREE = Path(os.environ.get("BENCH_DAEMON_TREE", str(REPO)))
PG_ADMIN = os.environ.get("CHATIRE_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("CHATIRE_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

#: The set-ups a scenario runs against: (store, bus, number of daemons).
SETUPS: dict[str, tuple[str, str, int]] = {
    "embedded": ("sqlite", "memory", 1),
    "production": ("postgresql", "amqp", 1),
    "production-2": ("postgresql", "amqp", 2),
}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_rss_kib(pid: int) -> int:
    """Resident set size of a process now (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_hwm_kib(pid: int) -> int:
    """Peak resident set size of a process (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def reset_hwm(pid: int) -> None:
    """Reset the kernel's peak-RSS mark of a process (clear_refs 5), if allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl, bounded in time."""
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database chatire_bench_<random>; its URL; dropped afterwards."""
    name = f"chatire_bench_{secrets.token_hex(5)}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def count_messages(db_url: str) -> tuple[int, int]:
    """Messages stored in a PostgreSQL database, and the transactions that stored them.

    One append transaction stamps all its messages (of one or more chats) with one
    created_at.
    """
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT created_at) FROM messages")
            row = cur.fetchone()
            return (int(row[0]), int(row[1])) if row else (0, 0)
    finally:
        conn.close()


@contextmanager
def fresh_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of our own; the amqp:// URL to it; deleted afterwards."""
    name = f"chatire-bench-{secrets.token_hex(5)}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{AMQP_BASE}/{name}"
    finally:
        rabbitmqctl("delete_vhost", name)


@dataclass
class Daemon:
    """One `twistd -n chatire` child process on a free port."""

    db: str
    bus: str
    log: Path
    options: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 30.0) -> None:
        twistd = str(Path(sys.executable).with_name("twistd"))
        command = [twistd, "-n", "--pidfile=", "--logfile", str(self.log), "chatire",
                   "--listen", f"tcp:{self.port}:interface=127.0.0.1:backlog=4096",
                   "--db", self.db, "--bus", self.bus, *self.options]
        env = {**os.environ, "PYTHONPATH": str(DAEMON_TREE), **_extra_env()}
        with self.log.with_suffix(".out").open("ab") as out:
            self.proc = subprocess.Popen(command, cwd=DAEMON_TREE, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon not healthy in {timeout} s: {self.tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM our child by its PID, wait; SIGKILL it if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def tail(self, lines: int = 20) -> str:
        text = ""
        for path in (self.log, self.log.with_suffix(".out")):
            try:
                text += path.read_text(errors="replace")
            except OSError:
                pass
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Deployment:
    """The daemons of one set-up, sharing one store and one bus."""

    setup: str
    daemons: list[Daemon]
    db: str
    workdir: Path


@contextmanager
def deployment(setup: str, *, options: tuple[str, ...] = ()) -> Iterator[Deployment]:
    """Start the daemons of a set-up on fresh storage; stop them all by PID afterwards."""
    store, bus_kind, count = SETUPS[setup]
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chatire-bench-")))
        if store == "sqlite":
            db = f"sqlite:///{workdir}/bench.db"
        else:
            pool = os.environ.get("BENCH_PG_POOL")  # default: the daemon's own (4)
            db = stack.enter_context(fresh_database()) + (f"?pool={pool}" if pool else "")
        bus = "memory://" if bus_kind == "memory" else stack.enter_context(fresh_vhost())
        base = ("--send-rate", "0", "--signup-rate", "0", "--chat-rate", "0",
                "--max-connections", "100000", "--ping-interval", "30",
                "--slow-reader-bytes", str(16 * 1024 * 1024),
                # Few accounts hold thousands of sockets here: no per-user cap.
                "--max-sockets-per-user", "0")
        daemons = [Daemon(db, bus, workdir / f"daemon{i}.log", base + options)
                   for i in range(count)]
        try:
            for daemon in daemons:
                daemon.start()
            yield Deployment(setup, daemons, db, workdir)
        finally:
            for daemon in daemons:
                daemon.stop()


def _extra_env() -> dict[str, str]:
    """BENCH_DAEMON_ENV='A=1 B=2': extra environment for the daemons (experiments)."""
    pairs = os.environ.get("BENCH_DAEMON_ENV", "").split()
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)
