"""`twistd chatire` as real processes for tests: chatire.testing's runner, quotas off."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from chatire import testing
from chatire.testing import QUOTAS_OFF, SOURCE_TREE, free_port, rabbitmqctl, sleep
from tests.support.services import require

__all__ = ["QUOTAS_OFF", "REPO", "DaemonProcess", "free_port", "fresh_vhost", "rabbitmqctl",
           "sleep"]

REPO = SOURCE_TREE


class DaemonProcess(testing.Daemon):
    """One `twistd -n chatire` child process with the quotas off; same port across restarts."""

    def __init__(self, workdir: Path, db: str, bus: str = "memory://", *options: str,
                 **kwargs: Any) -> None:
        super().__init__(workdir, db, bus, *QUOTAS_OFF, *options, **kwargs)



@asynccontextmanager
async def daemon_pair(workdir: Path, db: str, bus: str) -> AsyncIterator[list[DaemonProcess]]:
    """Two daemons "a" and "b" on one store and bus, started in turn; both stopped after."""
    pair = [DaemonProcess(workdir, db, bus, name=name) for name in ("a", "b")]
    try:
        for daemon in pair:
            await daemon.start()
        yield pair
    finally:
        for daemon in pair:
            await daemon.stop()


@contextmanager
def fresh_vhost() -> Iterator[tuple[str, str]]:
    """A RabbitMQ vhost of our own: (its name, the amqp:// URL to it); deleted afterwards."""
    require("RabbitMQ", 5672)
    with testing.fresh_vhost() as url:
        yield url.rsplit("/", 1)[1], url


class EnvDaemon(testing.BlockingDaemon):
    """A daemon configured by CHATIRE_* variables alone: `twistd -ny chatire.tac` (``tac``)
    or `twistd -n chatire`; listening on its free port, on the store ``db``."""

    def __init__(self, workdir: Path, db: str, env: dict[str, str], *, tac: bool,
                 **kwargs: Any) -> None:
        super().__init__(workdir, db, **kwargs)
        self.extra_env = {"CHATIRE_LISTEN": self.listen, "CHATIRE_DB": db, **env}
        self.tac = tac

    def application(self) -> list[str]:
        return ["-y", str(REPO / "chatire.tac")] if self.tac else ["chatire"]
