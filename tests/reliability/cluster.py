"""Two `twistd chatire` daemons on one fresh PostgreSQL database and RabbitMQ vhost."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
from twisted.internet import defer, reactor

from tests.support.daemons import DaemonProcess, fresh_vhost
from tests.support.proxy import Proxy
from tests.support.services import fresh_database

#: The daemons' options in these tests: no per-user send limit, the rest as shipped.
OPTIONS = ("--send-rate", "0")


@attrs.define
class Cluster:
    """The daemons, their database and vhost, and the proxy in front of b's broker link."""

    db: str
    vhost: str
    amqp: str
    daemons: list[DaemonProcess]
    proxy: Proxy | None = None

    @property
    def urls(self) -> list[str]:
        return [d.base_url for d in self.daemons]

    def bus_ups(self, index: int) -> int:
        """How many times daemon ``index`` brought its broker link up (restarts included)."""
        return self.log(index).count("AMQP bus up on")

    def log(self, index: int) -> str:
        log = self.daemons[index].log
        return log.read_text(errors="replace") if log.exists() else ""

    def logs(self) -> str:
        return "\n".join(d.log.read_text(errors="replace") for d in self.daemons
                         if d.log.exists())


def _via(amqp: str, port: int, heartbeat: int) -> str:
    """The amqp:// URL through a proxy on ``port``, with a short heartbeat."""
    return re.sub(r"@[^/]+/", f"@127.0.0.1:{port}/", amqp, count=1) + f"?heartbeat={heartbeat}"


@asynccontextmanager
async def cluster(workdir: Path, *, proxied: bool = False, heartbeat: int = 2,
                  options: tuple[str, ...] = ()) -> AsyncIterator[Cluster]:
    """Start daemons a and b (b's bus through a Proxy if ``proxied``); stop all after."""
    with fresh_database() as db, fresh_vhost() as (vhost, amqp):
        proxy = None
        bus_b = amqp
        if proxied:
            proxy = Proxy(reactor, "127.0.0.1", 5672)
            bus_b = _via(amqp, await proxy.start(), heartbeat)
        daemons = [DaemonProcess(workdir, db, amqp, *OPTIONS, *options, name="a"),
                   DaemonProcess(workdir, db, bus_b, *OPTIONS, *options, name="b")]
        try:
            await daemons[0].start()  # one migrates the schema, then the other starts
            await daemons[1].start()
            yield Cluster(db, vhost, amqp, daemons, proxy)
        finally:
            await defer.gatherResults([defer.ensureDeferred(d.stop()) for d in daemons])
            if proxy is not None:
                await proxy.stop()
