"""The daemon's collector settings: start-up objects frozen, young collections rarer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from twisted.application.internet import TimerService

from chatire import collector, daemon, tap


def test_settle_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    # In a child process: freezing the test runner's own objects would outlive the test.
    code = ("import gc; from chatire import collector; collector.settle(); "
            "print(gc.get_freeze_count(), gc.get_threshold()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert int(out[0]) > 1000  # modules, classes, functions
    assert int(out[1]) == collector.YOUNG_THRESHOLD


def test_trimmer_trims_once_the_open_count_fell_by_the_drop() -> None:
    counts = iter([0, 5000, 4500, 3900, 3950, 3000, 2950, 2800, 6000, 4999])
    trims: list[int] = []
    current = 0

    def count() -> int:
        nonlocal current
        current = next(counts)
        return current

    trimmer = collector.Trimmer(count, drop=1000, trim=lambda: trims.append(current))
    for _ in range(10):
        trimmer.check()
    # 5000 -> 3900 trims; the peak is then 3950, and 2950 is the next fall of 1000;
    # 6000 -> 4999 falls by 1001.
    assert trims == [3900, 2950, 4999]


def test_the_daemon_checks_for_closed_sockets_on_a_timer(tmp_path: Path) -> None:
    options = tap.Options()
    options.parseOptions(["--db", f"sqlite:///{tmp_path / 'chatire.db'}"])
    top = tap.makeService(options)
    timers = [s for s in top if isinstance(s, TimerService)]  # type: ignore[attr-defined]
    assert len(timers) == 1 and timers[0].step == daemon.TRIM_INTERVAL
    assert timers[0].call[0].__self__.__class__ is collector.Trimmer
