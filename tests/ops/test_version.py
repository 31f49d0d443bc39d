"""--version: `chatire` and `twistd chatire` print chatire's release, from the package metadata."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import chatire
from tests.support.daemons import REPO

BIN = Path(sys.executable).parent


def _run(*command: str) -> str:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_chatire_and_twistd_chatire_print_chatires_version() -> None:
    release = version("chatire")
    assert chatire.__version__ == release  # one place: the package metadata
    for command in ((str(BIN / "chatire"), "--version"),
                    (str(BIN / "twistd"), "chatire", "--version"),
                    (sys.executable, "-m", "chatire", "--version")):
        line = _run(*command)
        assert line.startswith(f"chatire {release} ("), (command, line)
        assert "Twisted" in line
