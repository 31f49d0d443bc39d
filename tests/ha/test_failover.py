"""Failover for real: two daemons on a RabbitMQ cluster and a PostgreSQL primary + standby
of their own, through two broker node stops and a promotion, with sign-outs meanwhile.

The servers are built from Debian's packages under a temporary directory (tests/ha/rabbit.py,
tests/ha/postgres.py); the daemons get every node in --bus and both database hosts in --db
with ``target_session_attrs=read-write``, and nothing else: they must move to the other
node and to the promoted server by themselves. The history checker must end at zero, every
post must end acknowledged (refused ones were refused clearly and retried), and every
sign-out made during an outage must close its socket with 4001 within seconds. The figures
go to docs/reliability.md (tests/ha/figures.py).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.ha.figures import Fault, Run, fault_figures, write_section
from tests.ha.postgres import PostgresPair
from tests.ha.rabbit import RabbitCluster, RabbitNode
from tests.ha.watch import HealthWatch, Poster, Victim
from tests.reliability.cluster import OPTIONS
from tests.reliability.faults import healthy
from tests.reliability.history import Report
from tests.reliability.workload import Workload, probe
from tests.support.client import Api
from tests.support.daemons import REPO, DaemonProcess, sleep

CLIENTS = int(os.environ.get("CHATIRE_HA_CLIENTS", "40"))
CHATS = 8
RATE = float(os.environ.get("CHATIRE_HA_RATE", "40"))
POST_EVERY = 0.25  # seconds between one poster's HTTP posts
BEFORE = 8.0  # seconds of traffic before the first fault
BROKER_DOWN = 12.0  # seconds a stopped broker node stays down
PROMOTE_AFTER = 5.0  # seconds between the primary's crash and the promotion
SETTLE = 12.0  # seconds after a fault is over before the next
VICTIMS = 4  # sign-outs per fault
REVOKED_WITHIN = 10.0  # seconds from an acknowledged sign-out to its socket's close
DOC = REPO / "docs" / "reliability.md"


class Drill:
    """Everything the run drives: servers, daemons, clients, watchers, and its notes."""

    def __init__(self, rabbit: RabbitCluster, pg: PostgresPair,
                 daemons: list[DaemonProcess]) -> None:
        self.rabbit, self.pg, self.daemons = rabbit, pg, daemons
        self.urls = [d.base_url for d in daemons]
        self.workload = Workload(self.urls, clients=CLIENTS, chats=CHATS, rate=RATE, mix=0.2)
        self.watch = HealthWatch(self.urls)
        self.posters: list[Poster] = []
        self.victims: list[Victim] = []
        self.faults: list[Fault] = []
        self.notes: list[str] = []
        self.began = 0.0

    def note(self, what: str) -> None:
        self.notes.append(f"{time.monotonic() - self.began:5.1f}s {what}")
        print(f"  {self.notes[-1]}")

    def log(self, i: int) -> str:
        path = self.daemons[i].log
        return path.read_text(errors="replace") if path.exists() else ""

    def node_of(self, i: int) -> RabbitNode:
        """The broker node daemon ``i`` is on (the last "AMQP bus up on" of its log)."""
        where = re.findall(r"AMQP bus up on (127\.0\.0\.1:\d+)", self.log(i))[-1]
        return next(n for n in self.rabbit.nodes if n.where == where)

    async def prepare(self) -> None:
        """The workload's members and chats, a poster per daemon, the victims."""
        w = self.workload
        await w.prepare()
        for i, url in enumerate(self.urls):
            user = await Api(url).user(f"poster{i}-{os.urandom(3).hex()}")
            chat = w.chat_uris[i % len(w.chat_uris)]
            await w.join(Api(url), chat, user.token, user.id)
            self.posters.append(Poster(w.history, user.name, user.token, url, chat, POST_EVERY))
        for k in range(3 * VICTIMS):
            self.victims.append(await Victim.open(self.urls, k % 2, f"v{k}-{os.urandom(3).hex()}"))

    async def sign_out(self, fault: Fault, victims: list[Victim]) -> None:
        """Each victim signs out on the other daemon; wait for its socket to close."""
        fault.victims = victims

        async def one(v: Victim) -> None:
            await v.sign_out(self.urls[1 - v.home])
            await v.until_closed(REVOKED_WITHIN)

        await defer.gatherResults([defer.ensureDeferred(one(v)) for v in victims],
                                  consumeErrors=True)

    async def stop_node(self, victims: list[Victim]) -> None:
        """Stop the node daemon a uses, sign out meanwhile, start the node again later."""
        node = self.node_of(0)
        on = [name for i, name in enumerate("ab") if self.node_of(i) is node]
        fault = Fault(f"broker node {node.letter} stopped (daemons {', '.join(on)} on it)", "bus",
                      time.monotonic())
        self.faults.append(fault)
        stopping = defer.ensureDeferred(node.stop())
        self.note(f"stopping broker node {node.name} (daemons {', '.join(on)} on it)")
        await self.watch.until_down("bus", 0, fault.start)  # (it closes connections late)
        self.note("daemon a's bus is down: sign-outs")
        await self.sign_out(fault, victims)
        await stopping
        self.note(f"node {node.letter} stopped")
        await sleep(max(0.0, fault.start + BROKER_DOWN - time.monotonic()))
        await node.start()
        self.note(f"node {node.letter} started again and back in the cluster")
        await sleep(SETTLE)
        fault.end = time.monotonic()

    async def promote(self, victims: list[Victim]) -> None:
        """Crash the primary, sign out meanwhile, promote the standby a little later."""
        fault = Fault("PostgreSQL primary stopped (-m immediate), standby promoted", "store",
                      time.monotonic())
        self.faults.append(fault)
        await self.pg.primary.stop("immediate")
        self.note("PostgreSQL primary stopped (-m immediate)")
        signing_out = defer.ensureDeferred(self.sign_out(fault, victims))
        await sleep(PROMOTE_AFTER)
        await self.pg.promote()
        fault.fixed = time.monotonic()
        self.note("the standby promoted")
        await signing_out
        self.note(f"{len(victims)} sign-outs taken (retried while refused)")
        await sleep(SETTLE)
        fault.end = time.monotonic()

    async def figures(self, report: Report) -> Run:
        """The run's figures, once the history is checked."""
        enforced = [v for v in self.victims
                    if v.close_code == 4001 and v.close_delay is not None
                    and 0 <= v.close_delay <= REVOKED_WITHIN
                    and await v.refused_everywhere(self.urls)]
        faults = [fault_figures(f, self.began, self.watch, self.posters) for f in self.faults]
        refusals = self.workload.stats()["retries"] + sum(f.refused for f in faults)
        return Run(report, self.workload.history, refusals, faults, self.victims,
                   len(enforced), time.monotonic() - self.began, self.tracebacks())

    def tracebacks(self) -> list[str]:
        """The exception line ending each traceback of the daemons' logs."""
        return [_exception_line(block) for i in (0, 1)
                for block in self.log(i).split("Traceback (most recent call last):")[1:]]

    def first_traceback(self) -> str:
        for i in (0, 1):
            log = self.log(i)
            at = log.find("Traceback")
            if at >= 0:
                return f"daemon {'ab'[i]}: {log[max(0, at - 300):at + 1500]}"
        return ""

    async def faults_in_turn(self) -> None:
        await sleep(BEFORE)
        bus_ups = [self.log(i).count("AMQP bus up on") for i in (0, 1)]
        await self.stop_node(self.victims[:VICTIMS])
        assert self.log(0).count("AMQP bus up on") > bus_ups[0], "daemon a never moved"
        assert self.node_of(0) is self.node_of(1), "after the first stop both share a node"
        bus_ups = [self.log(i).count("AMQP bus up on") for i in (0, 1)]
        await self.stop_node(self.victims[VICTIMS:2 * VICTIMS])
        for i in (0, 1):
            assert self.log(i).count("AMQP bus up on") > bus_ups[i], f"daemon {i} never moved"
        await self.promote(self.victims[2 * VICTIMS:])


@pytest.fixture
def base() -> Iterator[Path]:
    """The servers' temporary directory (PostgreSQL's user must get through it); removed
    after, once the servers are stopped."""
    gone = RabbitCluster.missing() + PostgresPair.missing()
    if gone:
        pytest.fail(f"make ha needs Debian's rabbitmq-server and postgresql: missing {gone}")
    path = Path(tempfile.mkdtemp(prefix="chatire-ha-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(900)
@pytest_twisted.ensureDeferred
async def test_failover_of_the_broker_and_the_database(base: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    rabbit, pg = RabbitCluster(base), PostgresPair(base)
    daemons = [DaemonProcess(tmp_path, pg.url, rabbit.urls, *OPTIONS, name=name)
               for name in ("a", "b")]
    run = Drill(rabbit, pg, daemons)
    try:
        await defer.gatherResults([defer.ensureDeferred(rabbit.start()),
                                   defer.ensureDeferred(pg.start())], consumeErrors=True)
        for daemon in daemons:  # one migrates the schema, then the other starts
            await daemon.start(timeout=60)
        print(f"\nha: servers and daemons up after {time.monotonic() - started:.0f} s")
        await run.prepare()
        await run.workload.connect()
        run.watch.start()
        run.began = time.monotonic()
        run.workload.start_sending()
        for poster in run.posters:
            poster.start()
        await run.faults_in_turn()
        run.workload.stop_sending()
        for poster in run.posters:
            await poster.stop()
        for daemon in daemons:
            await healthy(daemon, timeout=60)
        await probe(run.workload, timeout=60)
        report = await run.workload.finish(settle=60)
        run.watch.stop()
        result = await run.figures(report)
        write_section(DOC, result, run.notes, clients=CLIENTS, chats=CHATS, rate=RATE,
                      interval=POST_EVERY, broker_down=BROKER_DOWN, promote=PROMOTE_AFTER,
                      victims=VICTIMS, within=REVOKED_WITHIN)
        print(f"ha: {report.summary()} in {result.seconds:.0f} s | {run.workload.stats()}")
        for f in result.faults:
            print("  ", f)
        assert report.clean, report.details
        assert report.ok == report.sends, f"posts never acknowledged: {report.summary()}"
        assert result.unclear == 0, "posts or changes left without a clear answer"
        for v in run.victims:
            assert v.unclear == 0, f"{v.name}: a sign-out without a clear answer"
            assert v.close_code == 4001, f"{v.name}: socket closed {v.close_code}"
            assert v.close_delay is not None and 0 <= v.close_delay <= REVOKED_WITHIN, (
                f"{v.name}: closed {v.close_delay} s after the sign-out")
        assert result.enforced == len(run.victims), "a revoked token still works somewhere"
        for f in result.faults:
            assert f.part == "store" or f.in_outage, f"no sign-out while the bus was down: {f}"
        assert any(f.refused for f in result.faults if f.part == "store"), (
            "no post was refused while there was no primary: was it down at all?")
        assert not result.tracebacks, run.first_traceback()
    finally:
        run.watch.stop()
        stops: list[Callable[[], Awaitable[object]]] = [*(d.stop for d in daemons),
                                                       rabbit.close, pg.close]
        for stop in stops:
            try:  # each is stopped, whatever became of the others
                await stop()
            except Exception as e:
                print(f"ha: stopping {stop}: {e!r}")
        _keep_logs(base, tmp_path)


def _exception_line(traceback: str) -> str:
    """The line naming the exception, in the rest of a log from a traceback's first line."""
    after_file = False
    for line in (line.strip() for line in traceback.splitlines()[1:]):
        if line.startswith("File "):
            after_file = True  # the source line follows
        elif after_file or not line or set(line) <= set("^~ "):
            after_file = False
        else:
            return line
    return "?"


def _keep_logs(base: Path, into: Path) -> None:
    """The servers' logs, kept with the daemons' in pytest's directory before ``base`` goes."""
    for log in [*base.glob("rabbitmq/*/log/*.log"), *base.glob("rabbitmq/*/server.out"),
                *base.glob("postgresql/*.log")]:
        shutil.copy(log, into / f"{log.parent.name}-{log.name}")
