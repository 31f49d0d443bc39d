"""Issue #20: one daemon following N chats loses its broker connection; how long until
every chat is bound again and a post to the last one arrives (and the ways of binding).

Set-up: production-2 (PostgreSQL, RabbitMQ, two daemons in a vhost of their own); the
chats and one member are written into the store directly, 16 sockets on daemon0
subscribe to them. Then daemon0's AMQP connection, and only that one, is closed from the
broker's side (``rabbitmqctl close_connection``; the machine's RabbitMQ is never
restarted), three times one after another: the figures are the median cut's (by the time
to "ok"), each cut's in brackets. ``/healthz`` of daemon0 is polled every 50 ms
throughout: the bus is seen down (time 0), then "ok" again once every chat is bound (the
slowest answer shows whether the reactor stalled meanwhile); daemon1 posts to the last
chat (in uri order, the order of the rebind) every half second until one of those posts
reaches its socket within 200 ms (through the bus, or a periodic sweep that came just
then: the Hub sweeps every 2 s); every probe must have arrived 2.5 s after the bus is
ok.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2

from bench.daemon import AMQP_BASE, Daemon, deployment
from bench.scenarios import DaemonFigures, Result, log
from bench.setup import Api
from chatire.testing import fresh_vhost

AMQP_PORT = 5672
WINDOW = 48
SOCKETS = 16
POLL = 0.05
BUS_MS = 200
#: Times daemon0's broker connection is cut in one run (the figures: the median cut's).
CUTS = 3


def rabbitmqctl(*args: str) -> list[list[str]]:
    """rabbitmqctl's output as rows of tab-separated fields."""
    ctl = shutil.which("rabbitmqctl") or "rabbitmqctl"
    out = subprocess.run([ctl, "-q", *args], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def chat_bindings(vhost: str, prefix: str) -> int:
    """Bindings on the vhost from the exchanges of chats whose uri starts with ``prefix``."""
    rows = rabbitmqctl("list_bindings", "-p", vhost, "--no-table-headers", "source_name")
    return sum(1 for row in rows if row[0].startswith("chatire.chat." + prefix))


def amqp_ports(pid: int) -> set[int]:
    """Local ports of a process's TCP connections to the broker (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == AMQP_PORT:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def close_connection_of(daemon: Daemon, vhost: str, attempts: int = 3) -> str:
    """Close the daemon's AMQP connection from the broker's side; its broker pid.

    (A connection that went between the listing and the close is looked up again.)"""
    for attempt in range(attempts):
        ports = amqp_ports(daemon.pid)
        rows = rabbitmqctl("list_connections", "--no-table-headers", "pid", "vhost",
                           "peer_port")
        mine = [pid for pid, where, port in rows if where == vhost and int(port) in ports]
        if len(mine) != 1:
            raise RuntimeError(f"daemon's connection not found: ports {ports}, rows {rows}")
        try:
            rabbitmqctl("close_connection", mine[0], "bench rebind: closed on purpose")
            return mine[0]
        except subprocess.CalledProcessError as e:
            # rabbitmqctl may fail (69) on a connection that does close (seen with a
            # busy one): closed is closed.
            listed = rabbitmqctl("list_connections", "--no-table-headers", "pid")
            if [mine[0]] not in listed:
                log(f"  closing {mine[0]}: rabbitmqctl said {e.returncode}, but it is gone")
                return mine[0]
            if attempt == attempts - 1:
                raise
            log(f"  closing {mine[0]} failed; trying again")
    raise AssertionError("unreachable")


def load_chats(db: str, user_id: int, chats: int) -> list[str]:
    """``chats`` chats owned by the user, with the user as their member; their uris."""
    prefix = secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")
    conn = psycopg2.connect(db.split("?")[0])
    try:
        cur = conn.cursor()
        cur.execute("""WITH c AS (
                           INSERT INTO chats (uri, title, owner_id, created_at, last_activity_at)
                           SELECT %s || lpad(i::text, 6, '0'), 'rebind', %s, now(), now()
                             FROM generate_series(1, %s) i RETURNING id, uri)
                       INSERT INTO members (chat_id, user_id, joined_at, role)
                       SELECT c.id, %s, now(), 'owner' FROM c""",
                    (prefix, user_id, chats, user_id))
        cur.execute("SELECT uri FROM chats WHERE uri LIKE %s ORDER BY uri", (prefix + "%",))
        uris = [row[0] for row in cur.fetchall()]
        conn.commit()
        conn.autocommit = True
        cur.execute("ANALYZE chats")  # as autovacuum would, after this many rows
        cur.execute("ANALYZE members")
        return uris
    finally:
        conn.close()


class Socket:
    """daemon0's one socket: subscribes to every chat, notes when posts arrive."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.subscribed = 0
        self.errors: list[Any] = []
        self.arrivals: dict[tuple[str, int], float] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            body = json.loads(msg.data)
            kind = body.get("type")
            if kind == "subscribed":
                self.subscribed += 1
            elif kind == "message":
                self.arrivals.setdefault((body["chat"], body["seq"]), time.monotonic())
            elif kind == "error":
                self.errors.append(body)

    async def subscribe_all(self, uris: list[str], timeout: float) -> None:
        # At most WINDOW unanswered (the socket refuses a 65th waiting frame).
        deadline = time.monotonic() + timeout
        sent = 0
        while self.subscribed < len(uris):
            if self.errors or time.monotonic() > deadline:
                raise RuntimeError(f"subscribed {self.subscribed}/{len(uris)}: "
                                   f"{self.errors[:3]}")
            while sent < len(uris) and sent - self.subscribed < WINDOW:
                await self.ws.send_str(json.dumps({"type": "subscribe", "chat": uris[sent],
                                                   "after": None}))
                sent += 1
            await asyncio.sleep(0.002)


class Health:
    """daemon0's /healthz every POLL seconds: when its bus went down and came back (all
    chats bound: the bus reports "ok" only then), and the slowest answer."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url + "/healthz"
        self.down: float | None = None
        self.up: float | None = None
        self.slowest = 0.0
        self.task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while self.up is None:
            asked = time.monotonic()
            async with self.session.get(self.url) as reply:
                body = await reply.json()
            self.slowest = max(self.slowest, time.monotonic() - asked)
            if body.get("bus") != "ok":
                self.down = self.down or asked
            elif self.down is not None:
                self.up = asked
            await asyncio.sleep(POLL)


async def _measure(dep: Any, vhost: str, uris: list[str], token: str,
                   timeout: float) -> dict[str, Any]:
    d0, d1 = dep.daemons
    prefix = uris[0][:8]  # (load_chats: the run's own prefix, then a number)
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        # A socket handles its frames one after another: several share the chats.
        socks = [Socket(await session.ws_connect(
            d0.ws_url, headers={"Authorization": f"Bearer {token}"},
            max_msg_size=16 * 1024 * 1024)) for _ in range(SOCKETS)]
        t = time.monotonic()
        await asyncio.gather(*(sock.subscribe_all(uris[i::SOCKETS], timeout)
                               for i, sock in enumerate(socks)))
        out["subscribe_s"] = round(time.monotonic() - t, 2)
        sock = socks[(len(uris) - 1) % SOCKETS]  # the last chat's
        t = time.monotonic()
        while chat_bindings(vhost, prefix) < len(uris):
            if time.monotonic() - t > timeout:
                raise RuntimeError("the first binds did not all come")
            await asyncio.sleep(0.5)
        out["first_bind_s"] = round(time.monotonic() - t, 2)  # (to within a poll)

        api = Api(session, d1.base_url)
        cuts = [await _cut(d0, vhost, prefix, api, sock, uris[-1], token, session, timeout)
                for _ in range(CUTS)]
        # The figures are the median cut's (by the time to /healthz up), with each cut's.
        ordered = sorted(range(len(cuts)), key=lambda i: cuts[i].get("bus_ok_s", timeout))
        out.update(cuts[ordered[len(ordered) // 2]])
        out["bus_ok_s_runs"] = [c.get("bus_ok_s") for c in cuts]
        out["probes_posted"] = sum(c["probes_posted"] for c in cuts)
        out["probes_arrived"] = sum(c["probes_arrived"] for c in cuts)
        out["bindings_after"] = min(c["bindings_after"] for c in cuts)
        for each in socks:
            await each.ws.close()
    return out


async def _cut(d0: Any, vhost: str, prefix: str, api: Api, sock: Socket, last: str,
               token: str, session: aiohttp.ClientSession, timeout: float) -> dict[str, Any]:
    """Close daemon0's broker connection once; time its way back, probing through the bus."""
    out: dict[str, Any] = {}
    cpu0 = d0.cpu()
    health = Health(session, d0.base_url)
    await asyncio.sleep(0.5)
    called = time.monotonic()
    await asyncio.to_thread(close_connection_of, d0, vhost)
    out["close_call_s"] = round(time.monotonic() - called, 2)
    deadline = called + timeout
    # Probes go on until one reaches the socket through the bus (within BUS_MS of
    # its post; the Hub's sweep every 2 s heals the others from the store).
    posted: list[tuple[int, float]] = []
    while time.monotonic() < deadline and "probe_via_bus_s" not in out:
        status, body = await api.call("POST", f"/api/chats/{last}/messages",
                                      {"message": f"probe {len(posted)}"}, token)
        if status != 201:
            raise RuntimeError(f"probe post: {status} {body}")
        posted.append((body["message"]["seq"], time.monotonic()))
        await asyncio.sleep(0.5)
        for seq, when in posted:
            arrival = sock.arrivals.get((last, seq))
            if arrival is not None and arrival - when < BUS_MS / 1000 and health.down:
                out["probe_via_bus_s"] = round(arrival - health.down, 2)
                break
    try:
        await asyncio.wait_for(health.task, max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        pass
    await asyncio.sleep(2.5)  # past the next sweep: every probe has arrived by now
    out["probes_posted"] = len(posted)
    out["probes_arrived"] = sum(1 for seq, _ in posted if (last, seq) in sock.arrivals)
    if health.down is not None and health.up is not None:
        out["bus_ok_s"] = round(health.up - health.down, 2)
    out["slowest_healthz_ms"] = round(1000 * health.slowest, 1)
    out["daemon_cpu_s"] = round(d0.cpu() - cpu0, 2)
    out["bindings_after"] = chat_bindings(vhost, prefix)
    return out


def _bound_in(logfile: Path) -> float | None:
    """The daemon's own figure: "bound in X s" of its last bus-up line."""
    found = _bound_each(logfile)
    return found[-1] if found else None


def _bound_each(logfile: Path) -> list[float]:
    """Every "bound in X s" of the daemon's bus-up lines, in order."""
    return [float(f) for f in re.findall(r"chats followed \(bound in ([0-9.]+) s\)",
                                         logfile.read_text())]


def rebind(chats: int, timeout: float = 300.0) -> Result:
    """Cut daemon0's broker connection with ``chats`` chats followed; time the way back."""
    result = Result("rebind", "production-2", {"chats": chats})
    # The subscribes wait on the store, two queries each: more connections, more at once.
    with deployment("production-2", options=("--max-subscriptions", str(chats)),
                    pool=16) as dep:
        vhost = dep.daemons[0].bus.rsplit("/", 1)[1]
        log(f"  {chats:,} chats into the store")

        async def account() -> Any:
            async with aiohttp.ClientSession() as session:
                return await Api(session, dep.daemons[0].base_url).account(
                    "r" + secrets.token_hex(4))

        user = asyncio.run(account())
        uris = load_chats(dep.db, user.user_id, chats)
        summary = asyncio.run(_measure(dep, vhost, uris, user.token, timeout))
        summary["daemon_bound_in_s"] = _bound_in(dep.daemons[0].log)
        # The first is the start's; then one a cut.
        summary["daemon_bound_in_s_runs"] = _bound_each(dep.daemons[0].log)[1:]
        summary["lost"] = summary["probes_posted"] - summary["probes_arrived"]
        summary["all_bound"] = summary["bindings_after"] == chats
        result.summary = summary
        result.daemons = [DaemonFigures(0.0, 0, 0, d.rss_kib()) for d in dep.daemons]
        log(f"  rebind {chats:,}: {summary}")
    return result


def bind_ways(chats: int, rounds: int) -> Result:
    """bench.bindrate in a vhost of its own: seconds to bind ``chats`` chats, each way."""
    return _child("bindrate", [str(chats), str(rounds)], {"chats": chats, "rounds": rounds})


def _child(module: str, args: list[str], params: dict[str, Any]) -> Result:
    """Run ``python -m bench.MODULE URL ARGS...`` on a fresh vhost; its JSON as the summary."""
    with fresh_vhost(AMQP_BASE + "/%2F", "chatire-bench") as url:
        out = subprocess.run([sys.executable, "-m", f"bench.{module}", url, *args],
                             check=True, capture_output=True, text=True, timeout=240).stdout
    result = Result(module, "rabbitmq", params, summary=json.loads(out))
    log(f"  {module}: {result.summary}")
    return result


def own_copy(posts: int, rounds: int) -> Result:
    """bench.owncopy in a vhost of its own: a post's cost with and without its own copy."""
    return _child("owncopy", [str(posts), str(rounds)],
                  {"posts": posts, "rounds": rounds})


def _each(values: list[Any] | None) -> str:
    """" (a / b / c)": each cut's figure, after the median cut's."""
    return f" ({' / '.join(str(v) for v in values)})" if values and len(values) > 1 else ""


def tables(results: list[dict[str, Any]]) -> list[str]:
    """The docs/benchmarks.md section of these items."""
    out: list[str] = []
    if any(r["scenario"] in ("rebind", "bindrate", "owncopy") for r in results):
        out += ["", "## Rebind after a lost broker connection, and the own copy (issue #20)"]
    for r in results:
        s = r["summary"]
        if r["scenario"] == "rebind" and "error" not in s:
            out += ["", __doc__.split("\n\n", 1)[1].replace("\n", " ").strip(), "",
                    "| run | chats | subscribe s | first binds s | close call s | bus ok "
                    "again s | daemon: bound in s | first probe in 200 ms, s | slowest /healthz "
                    "ms | "
                    "daemon CPU s | bindings after | probes arrived |",
                    "|---|---|---|---|---|---|---|---|---|---|---|---|",
                    f"| `{r['label']}` | {r['params']['chats']:,} | {s['subscribe_s']} | "
                    f"{s['first_bind_s']} | {s['close_call_s']} | {s.get('bus_ok_s', '—')}"
                    f"{_each(s.get('bus_ok_s_runs'))} | {s.get('daemon_bound_in_s', '—')}"
                    f"{_each(s.get('daemon_bound_in_s_runs'))} | "
                    f"{s.get('probe_via_bus_s', '—')} | "
                    f"{s['slowest_healthz_ms']} | {s['daemon_cpu_s']} | "
                    f"{s['bindings_after']:,} | {s['probes_arrived']}/{s['probes_posted']} |"]
        elif r["scenario"] == "owncopy" and "error" not in s:
            out += ["", "What a daemon's own copy of its posts costs (`bench/owncopy.py`: "
                    f"{s['posts']:,} posts a round, medians of {s['rounds']} rounds each "
                    "way, alternating; microseconds a post):", "",
                    "| own copy | daemon CPU us | broker CPU us | wall us |", "|---|---|---|---|",
                    *(f"| {way} | {s[way + '_daemon_us']} | {s[way + '_broker_us']} | "
                      f"{s[way + '_wall_us']} |" for way in ("with", "without"))]
        elif r["scenario"] == "bindrate" and "error" not in s:
            out += ["", f"Binding one fresh queue to {r['params']['chats']:,} chats, each "
                    "way (`bench/bindrate.py`, seconds, median of "
                    f"{r['params'].get('rounds', 1)} rounds; `xK`: over K channels):", "",
                    "| " + " | ".join(k for k in s if k != "runs") + " |",
                    "|" + "---|" * sum(1 for k in s if k != "runs"),
                    "| " + " | ".join(f"{v:.2f}" + (
                        f" ({' / '.join(f'{x:.2f}' for x in s['runs'][k])})"
                        if k in s.get("runs", {}) else "")
                        for k, v in s.items() if k != "runs") + " |"]
    return out
