"""A two-node RabbitMQ cluster of our own, from Debian's rabbitmq-server, in a temporary
directory: own node names, ports, cookie and epmd; never the machine's broker.

The nodes are ``chatire-ha-a@localhost`` and ``chatire-ha-b@localhost`` with AMQP and
distribution ports of their own, their own config, data, logs and (empty) plugin list,
an Erlang cookie of their own (in the ``HOME`` they and rabbitmqctl share) and an epmd
of their own on a free port (``ERL_EPMD_PORT``), so nothing of the machine's broker is
read, named or registered with. The scripts are Debian's ``/usr/lib/rabbitmq/bin`` ones:
``/usr/sbin``'s wrapper would switch to the ``rabbitmq`` user and its cookie. Each node
is stopped with ``rabbitmqctl -n <its name> stop`` (SIGKILL to its own session if it
lingers), then epmd by its PID.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from twisted.internet import defer

from chatire.testing import free_port
from tests.ha.programs import Spawned, clean_environment, missing, run
from tests.support.daemons import sleep

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
EPMD = Path(shutil.which("epmd") or "/usr/bin/epmd")
PREFIX = "chatire-ha-"


class RabbitNode:
    """One node of the cluster: its name, ports and directory; started and stopped at will."""

    def __init__(self, cluster: RabbitCluster, letter: str) -> None:
        self.cluster = cluster
        self.letter = letter
        self.name = f"{PREFIX}{letter}@localhost"
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.dir = cluster.dir / letter
        self.server: Spawned | None = None

    @property
    def url(self) -> str:
        """The amqp:// URL of this node (guest, default vhost: the whole cluster is ours)."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def where(self) -> str:
        """How chatire's log names this node ("AMQP bus up on 127.0.0.1:PORT")."""
        return f"127.0.0.1:{self.amqp_port}"

    def environment(self) -> dict[str, str]:
        return clean_environment({
            **self.cluster.common_env(),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
        })

    async def start(self, timeout: float = 90.0) -> None:
        """Start the node and wait until it has booted (and rejoined its cluster)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            "log.console = false\nlog.file.level = info\n")
        (self.dir / "enabled_plugins").write_text("[].\n")  # no management plugin
        self.server = Spawned([RABBIT_BIN / "rabbitmq-server"], self.dir / "server.out",
                              self.environment())
        self.server.start()
        end = time.monotonic() + timeout
        while True:  # await_startup fails at once until the node has registered with epmd
            done = await self.ctl("await_startup", "--timeout", "30", check=False)
            if done == 0:
                return
            if not self.server.running:
                raise RuntimeError(f"RabbitMQ node {self.name} exited: {self.tail()}")
            if time.monotonic() > end:
                await self.stop()
                raise RuntimeError(f"RabbitMQ node {self.name} not up in {timeout} s: "
                                   f"{self.tail()}")
            await sleep(0.5)

    async def ctl(self, *args: str, check: bool = True) -> int:
        """rabbitmqctl on this node; its exit code (RuntimeError if ``check`` and not 0)."""
        done = await self.cluster.ctl("-n", self.name, *args, check=check)
        return done.returncode

    async def stop(self) -> None:
        """Stop the node (rabbitmqctl stop); SIGKILL to its session if that fails."""
        if self.server is None:
            return
        if self.server.running:
            await self.ctl("stop", check=False)
        if not await self.server.exited(30):
            self.server.kill()
        await self.server.stop()
        self.server = None

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.running

    def tail(self, lines: int = 20) -> str:
        text = ""
        for path in [self.dir / "server.out", *sorted((self.dir / "log").glob("*.log"))]:
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class RabbitCluster:
    """Nodes a and b joined into one cluster, under ``directory`` (which must exist)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory / "rabbitmq"
        self.home = self.dir / "home"
        self.epmd_port = free_port()
        self.ctl_port = free_port()
        while self.ctl_port > 65000:  # rabbitmqctl's own ports: this one and the next nine
            self.ctl_port = free_port()
        self.nodes = [RabbitNode(self, "a"), RabbitNode(self, "b")]
        self.epmd: Spawned | None = None

    @staticmethod
    def missing() -> list[str]:
        return missing(RABBIT_BIN / "rabbitmq-server", RABBIT_BIN / "rabbitmqctl", EPMD)

    @property
    def urls(self) -> str:
        """Every node's URL, comma-separated, for --bus."""
        return ",".join(node.url for node in self.nodes)

    def common_env(self) -> dict[str, str]:
        """What every node and rabbitmqctl share: the cookie's HOME, our epmd, no /etc."""
        return {
            "HOME": str(self.home),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.ctl_port),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.ctl_port + 9),
        }

    async def ctl(self, *args: str, check: bool = True, timeout: float = 60.0,
                  ) -> subprocess.CompletedProcess[str]:
        """rabbitmqctl with our cookie and epmd (name the node with ``-n``)."""
        return await run([RABBIT_BIN / "rabbitmqctl", "-q", *args],
                         env=clean_environment(self.common_env()), check=check,
                         timeout=timeout)

    async def start(self) -> None:
        """Our epmd, both nodes (at once), b joined to a; RuntimeError if the cluster is not
        whole."""
        self.dir.mkdir(parents=True)
        self.home.mkdir()
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20).upper())
        cookie.chmod(0o400)
        (self.dir / "rabbitmq-env.conf").write_text("# chatire's HA run: nothing from /etc\n")
        self.epmd = Spawned([EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                            self.dir / "epmd.out", clean_environment({}))
        self.epmd.start()
        a, b = self.nodes
        await defer.gatherResults([defer.ensureDeferred(n.start()) for n in self.nodes],
                                  consumeErrors=True)
        await b.ctl("stop_app")
        await b.ctl("join_cluster", a.name)
        await b.ctl("start_app")
        running = await self.running_nodes(a)
        if sorted(running) != sorted(n.name for n in self.nodes):
            raise RuntimeError(f"the cluster is not whole: running {running}")

    async def running_nodes(self, via: RabbitNode) -> list[str]:
        done = await self.ctl("-n", via.name, "cluster_status", "--formatter", "json")
        return list(json.loads(done.stdout)["running_nodes"])

    async def close(self) -> None:
        """Stop both nodes, then epmd (each by its own name or PID)."""
        for node in self.nodes:
            await node.stop()
        if self.epmd is not None:
            await self.epmd.stop()
            self.epmd = None
