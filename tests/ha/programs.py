"""Programs the failover run starts: run to the end off the reactor thread, or spawned and
stopped by their own PID; the Debian packages they come from."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from twisted.internet.threads import deferToThread

from tests.support.daemons import sleep

#: Variables of ours that must not leak into the servers we start (a developer's own
#: RABBITMQ_NODENAME, PGPORT and the like would point them at the machine's servers).
_FOREIGN = ("RABBITMQ_", "ERL_", "PG")


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without RabbitMQ, Erlang or libpq settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    return {**env, **extra}


def missing(*paths: Path) -> list[str]:
    """Which of these programs are not installed."""
    return [str(p) for p in paths if not os.access(p, os.X_OK)]


async def run(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None,
              timeout: float = 60.0, check: bool = True,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a program to its end in a thread (the reactor goes on), at most ``timeout`` s."""
    done: subprocess.CompletedProcess[str] = await deferToThread(
        subprocess.run, [str(a) for a in argv], env=dict(env) if env is not None else None,
        capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {done.returncode}: "
                           f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return done


class Spawned:
    """A long-running program of ours in a session of its own, its output in a log file;
    stopped by its PID (and its session's, for what it forked)."""

    def __init__(self, argv: Sequence[str | Path], log: Path, env: Mapping[str, str]) -> None:
        self.argv, self.log, self.env = [str(a) for a in argv], log, dict(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def exited(self, timeout: float) -> bool:
        """Wait until it has exited; False if it still runs after ``timeout`` s."""
        end = time.monotonic() + timeout
        while self.running and time.monotonic() < end:
            await sleep(0.1)
        return not self.running

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL to its whole session if it lingers."""
        if self.proc is None:
            return
        if self.running:
            self.proc.terminate()
        if not await self.exited(timeout):
            self.kill()
        self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL its session now (it and every process it started)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
