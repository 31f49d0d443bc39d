"""The daemon's collector settings: start-up objects frozen, young collections rarer."""

from __future__ import annotations

import subprocess
import sys

from chatire import collector


def test_settle_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    # In a child process: freezing the test runner's own objects would outlive the test.
    code = ("import gc; from chatire import collector; collector.settle(); "
            "print(gc.get_freeze_count(), gc.get_threshold()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert int(out[0]) > 1000  # modules, classes, functions
    assert int(out[1]) == collector.YOUNG_THRESHOLD
