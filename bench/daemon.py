"""Daemons under test: `twistd chatire` processes, their store and bus, their /proc figures."""

from __future__ import annotations

import os
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from chatire.testing import QUOTAS_OFF, BlockingDaemon, free_port, fresh_database, fresh_vhost

REPO = Path(__file__).resolve().parents[1]
#: The source tree the daemons run from (BENCH_DAEMON_TREE: another checkout, for A/B runs).
DAEMON_TREE = Path(os.environ.get("BENCH_DAEMON_TREE", str(REPO)))
PG_ADMIN = os.environ.get("CHATIRE_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("CHATIRE_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672")
#: Every benchmark daemon's options: no quotas, room for many sockets.
BASE_OPTIONS: tuple[str, ...] = (
    "--send-rate", "0", *QUOTAS_OFF, "--max-connections", "100000", "--ping-interval", "30",
    "--slow-reader-bytes", str(16 * 1024 * 1024),
    # Few accounts hold thousands of sockets here: no per-user cap.
    "--max-sockets-per-user", "0",
    # Many senders share a token here and fire changes without waiting (mixed).
    "--max-pending-changes", "0")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

#: The set-ups a scenario runs against: (store, bus, number of daemons).
SETUPS: dict[str, tuple[str, str, int]] = {
    "embedded": ("sqlite", "memory", 1),
    "production": ("postgresql", "amqp", 1),
    "production-2": ("postgresql", "amqp", 2),
}


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


class Daemon(BlockingDaemon):
    """One `twistd -n chatire` child process on a free port, from DAEMON_TREE; with
    ``metrics``, its /metrics on a second port of its own (``--metrics-listen``)."""

    def __init__(self, workdir: Path, db: str, bus: str, name: str,
                 options: tuple[str, ...] = (), metrics: bool = False) -> None:
        port = free_port()
        self.metrics_url = ""
        if metrics:
            metrics_port = free_port()
            options += ("--metrics-listen", f"tcp:{metrics_port}:interface=127.0.0.1")
            self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        super().__init__(workdir, db, bus, *options, name=name, port=port,
                         listen=f"tcp:{port}:interface=127.0.0.1:backlog=4096",
                         logfile=workdir / f"{name}.log", env=_extra_env(), tree=DAEMON_TREE)

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def samples(self) -> dict[str, float]:
        """Every sample of its /metrics now, keyed ``name{label="value",...}``."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.metrics_url, timeout=10) as reply:
            text = reply.read().decode("utf-8")
        return {sample.name + "{" + ",".join(f'{k}="{v}"' for k, v in
                                             sorted(sample.labels.items())) + "}": sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples}


@dataclass
class Deployment:
    """The daemons of one set-up, sharing one store and one bus."""

    setup: str
    daemons: list[Daemon]
    db: str
    workdir: Path


@contextmanager
def deployment(setup: str, *, options: tuple[str, ...] = (),
               metrics: bool = False, pool: int | None = None) -> Iterator[Deployment]:
    """Start the daemons of a set-up on fresh storage; stop them all by PID afterwards.

    ``metrics``: each daemon also serves /metrics (Daemon.samples); ``pool``: its
    PostgreSQL connections (else BENCH_PG_POOL, else the daemon's own default)."""
    store, bus_kind, count = SETUPS[setup]
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chatire-bench-")))
        if store == "sqlite":
            db = f"sqlite:///{workdir}/bench.db"
        else:
            connections = pool or os.environ.get("BENCH_PG_POOL")  # default: the daemon's (4)
            db = stack.enter_context(fresh_database(PG_ADMIN, "chatire_bench"))
            db += f"?pool={connections}" if connections else ""
        bus = "memory://" if bus_kind == "memory" else stack.enter_context(
            fresh_vhost(AMQP_BASE + "/%2F", "chatire-bench"))
        daemons = [Daemon(workdir, db, bus, f"daemon{i}", BASE_OPTIONS + options, metrics)
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
