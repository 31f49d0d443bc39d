"""Issue 'Live delivery', done means: two people chat through two daemons, one daemon is
killed, the terminal client reconnects to the other and loses nothing."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.support.client import Api
from tests.support.daemons import REPO, DaemonProcess, fresh_vhost, sleep
from tests.support.services import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]
CLIENT = REPO / "docs" / "examples" / "terminal_chat.py"


@pytest.fixture
def backing() -> Iterator[tuple[str, str]]:
    with fresh_database() as db, fresh_vhost() as (_, amqp):
        yield db, amqp


@pytest_twisted.async_yield_fixture
async def daemons(backing: tuple[str, str], tmp_path: Path) -> AsyncIterator[Any]:
    pair = [DaemonProcess(tmp_path, *backing, name=name) for name in ("a", "b")]
    await defer.gatherResults([defer.ensureDeferred(d.start()) for d in pair])
    yield pair
    for d in pair:
        await d.stop()


class Terminal:
    """The example client as a person runs it: lines in, lines out."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(CLIENT), *args], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.seen: list[str] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def type(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    async def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        for _ in range(int(timeout / 0.05)):
            while not self.lines.empty():
                line = self.lines.get()
                self.seen.append(line)
                if line.startswith(prefix):
                    return line
            await sleep(0.05)
        raise AssertionError(f"no line starting {prefix!r}; saw {self.seen}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


@pytest_twisted.ensureDeferred
async def test_two_people_chat_through_two_daemons_and_survive_a_kill(
        daemons: list[DaemonProcess]) -> None:
    a, b = daemons
    bob = await Api(b.base_url).user("bob", "bob password")
    alice = Terminal("--user", "alice", "--password", "alice password",
                     "--server", a.base_url, "--server", b.base_url)
    try:
        uri = (await alice.wait_for("* new chat: ")).split(": ")[1]
        await bob.join(uri)
        assert await alice.wait_for("* [1]") == "* [1] bob joined"
        alice.type("hello from alice")
        assert await alice.wait_for("[2]") == "[2] alice: hello from alice"
        await bob.post(uri, "hi alice")
        assert await alice.wait_for("[3]") == "[3] bob: hi alice"
        await a.stop(signal.SIGKILL)  # alice's daemon dies
        await bob.post(uri, "are you there?")
        await bob.post(uri, "still there?")
        assert await alice.wait_for("[4]") == "[4] bob: are you there?"
        assert await alice.wait_for("[5]") == "[5] bob: still there?"
        alice.type("yes, via the other daemon")
        assert await alice.wait_for("[6]") == "[6] alice: yes, via the other daemon"
        numbered = [line for line in alice.seen if line.startswith("[")]
        assert [line.split("]")[0] for line in numbered] == ["[2", "[3", "[4", "[5", "[6"]
        _, body = await bob.call("GET", f"/api/chats/{uri}/messages")
        assert len(body["messages"]) == 5
    finally:
        alice.stop()
