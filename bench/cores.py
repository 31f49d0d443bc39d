"""CPU pinning with `taskset`: what one core more or less buys a set-up."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from typing import Any

import attrs

from bench.cells import num

#: The `max` search that is repeated pinned to fewer CPUs (bench/suite.py).
BASE = "max production 100x10"


@attrs.frozen
class Pinning:
    """Which CPUs the daemons and the generator's processes may run on (``taskset -c``).

    PostgreSQL and RabbitMQ are the machine's own and are never pinned: they run where
    the kernel puts them."""

    daemon: str
    generator: str

    def describe(self) -> str:
        return f"daemon on CPU {self.daemon}, generator on CPU {self.generator}"


def pin(pids: Iterable[int], cpus: str) -> None:
    """Confine every thread of each process to ``cpus`` (a taskset list such as "0" or "0,1")."""
    for pid in pids:
        subprocess.run(["taskset", "-a", "-c", "-p", cpus, str(pid)], check=True,
                       stdout=subprocess.DEVNULL)


def allowed(pid: int) -> set[int]:
    """The CPUs a process may run on now."""
    return set(os.sched_getaffinity(pid))


def cpu_count() -> int:
    """CPUs this process may use (the machine's, unless it is pinned itself)."""
    return len(os.sched_getaffinity(0))


def table(results: list[dict[str, Any]]) -> list[str]:
    """What one core more or less buys: the same `max` search, unpinned and pinned."""
    runs = [r for r in results if r["scenario"] == "max" and r["label"].startswith(BASE)
            and "error" not in r["summary"] and r["steps"]]
    if len(runs) < 2:
        return []
    out = ["", "## One core more or less (`taskset`)", "",
           f"`{BASE}` searched again with the daemon and the generator's processes "
           "confined by `taskset -a -c -p` (PostgreSQL and RabbitMQ are the machine's own and "
           "stay unpinned). Daemon CPU per delivery is the median over the passing steps.", "",
           "| run | CPUs | highest sustained deliveries/s | against one core | "
           "daemon µs per delivery |", "|---|---|---|---|---|"]
    one = next((r["summary"]["max_rate"] for r in runs if "one core" in r["label"]), 0)
    for r in runs:
        pinning = r["params"].get("pinning") or "unpinned: everything shares both cores"
        rate = r["summary"]["max_rate"]
        passing = sorted(st["daemon_us_per_delivery"] for st in r["steps"]
                         if st.get("daemon_us_per_delivery") and st["rate"] <= rate)
        us = passing[len(passing) // 2] if passing else 0.0
        ratio = f"x{rate / one:.2f}" if one else "—"
        out.append(f"| `{r['label']}` | {pinning} | {num(rate)} | {ratio} | {us:.1f} |")
    return out
