"""The notify scenario (issue #14): what planning notifications costs the post path, how fast
one and two daemons send due rows, and the plan of the statement that claims them."""

from __future__ import annotations

import asyncio
import re
import secrets
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg2

from bench.daemon import Deployment, deployment
from bench.generator import Generator, percentile
from bench.receiver import hook_receiver
from bench.scenarios import Result, Watch, _step_row, _stored, log
from bench.setup import Account, Api, _bounded
from bench.worker import Sender
from chatire.notify.dispatcher import BATCH, HOLD, INTERVAL
from chatire.store.notify import claim_due

#: Every daemon of the scenario may send to the receiver on loopback.
OPTIONS = ("--webhook-allow-private",)
#: Longer than any run: bursts open, none falls due, nothing is sent.
LONG_DELAY = 3600
#: The planner's transactions, as chatire.metrics.MeteredEngine labels them.
PLANNER_QUERIES = ("roster", "add_due")
#: The two sets of chats of the planning part: alike but for a channel.
VARIANTS = ("unreachable", "reachable")

_QUERY_COUNT = re.compile(r'^chatire_store_query_seconds_(count|sum)\{query="([a-z_]+)"\}$')


def _query_totals(dep: Deployment) -> dict[str, dict[str, float]]:
    """Per store transaction name: how many ran and their seconds, over every daemon."""
    totals: dict[str, dict[str, float]] = {}
    for daemon in dep.daemons:
        for key, value in daemon.samples().items():
            match = _QUERY_COUNT.match(key)
            if match:
                kind, name = match.groups()
                totals.setdefault(name, {"count": 0.0, "sum": 0.0})[kind] += value
    return totals


def _query_delta(after: dict[str, dict[str, float]],
                 before: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, figures in after.items():
        was = before.get(name, {"count": 0.0, "sum": 0.0})
        count = figures["count"] - was["count"]
        if count:
            out[name] = {"count": int(count),
                         "mean_ms": round(1000 * (figures["sum"] - was["sum"]) / count, 2)}
    return out


def _sample(daemon: Any, name: str) -> float:
    return float(sum(v for k, v in daemon.samples().items() if k.startswith(name + "{")))


def _scalar(db: str, sql: str, params: Sequence[Any] = ()) -> Any:
    conn = psycopg2.connect(db.split("?")[0])
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def _due_rows(dep: Deployment) -> int:
    return int(_scalar(dep.db, "SELECT count(*) FROM notify_due"))


# -- planning: the post path with and without reachable members --------------------------


async def _accounts_and_chats(base_url: str, rooms: int, members: int,
                              hook_url: str) -> dict[str, tuple[list[Account], list[str]]]:
    """Per variant: ``members`` users and ``rooms`` chats owned by them in turn, through the
    API; everyone at level ``all`` with a LONG_DELAY, but only the reachable ones with a
    webhook."""
    prefix = "n" + secrets.token_hex(3)
    sets: dict[str, tuple[list[Account], list[str]]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        api = Api(session, base_url)
        for variant in VARIANTS:
            accounts: list[Account] = await _bounded(
                [api.account(f"{prefix}{variant[0]}_{i}") for i in range(members)], 8)
            uris: list[str] = await _bounded(
                [api.new_chat(accounts[c % members], f"{variant} {c}") for c in range(rooms)],
                16)
            settings: dict[str, Any] = {"level": "all", "delay": LONG_DELAY}
            if variant == "reachable":
                settings["webhook"] = {"url": hook_url}
            for status, body in await _bounded(
                    [api.call("PUT", "/api/me/notifications", settings, a.token)
                     for a in accounts], 16):
                if status != 200:
                    raise RuntimeError(f"notification settings: {status} {body}")
            sets[variant] = accounts, uris
    return sets


def _join_all(db: str, sets: dict[str, tuple[list[Account], list[str]]]) -> int:
    """Every user of a variant a member of each of its chats, written straight into the
    store (2 x 100 x 49 joins over HTTP take minutes on a busy machine); rows added."""
    conn = psycopg2.connect(db.split("?")[0])
    try:
        with conn, conn.cursor() as cur:
            added = 0
            for accounts, uris in sets.values():
                cur.execute("""INSERT INTO members (chat_id, user_id, joined_at)
                               SELECT c.id, u.id, now() FROM chats c, unnest(%s::bigint[]) u(id)
                                WHERE c.uri = ANY(%s) ON CONFLICT DO NOTHING""",
                            ([a.user_id for a in accounts], uris))
                added += cur.rowcount
        return added
    finally:
        conn.close()


def planning(setup: str, rooms: int, members: int, window: int, duration: float, runs: int,
             workers: int) -> Result:
    """Ingest (closed-loop senders, one a chat) into chats whose members all have a webhook
    at level ``all``, against the same load into chats where nobody can be reached;
    interleaved on one deployment, with the planner's store transactions counted."""
    result = Result("notify", setup, {"part": "planning", "rooms": rooms, "members": members,
                                      "window": window, "duration": duration, "runs": runs,
                                      "delay": LONG_DELAY})
    with hook_receiver() as hook, deployment(setup, options=OPTIONS, metrics=True) as dep:
        daemons = dep.daemons
        started = time.monotonic()
        sets = asyncio.run(_accounts_and_chats(daemons[0].base_url, rooms, members,
                                               hook.url))
        _join_all(dep.db, sets)
        log(f"  notify planning {setup}: 2 x {rooms} chats x {members} members set up in "
            f"{time.monotonic() - started:.0f} s")
        gens: dict[str, Generator] = {}
        try:
            for variant, (accounts, uris) in sets.items():
                senders = [Sender(daemons[c % len(daemons)].ws_url,
                                  accounts[c % len(accounts)].token, uri, 0.0, window)
                           for c, uri in enumerate(uris)]
                gens[variant] = Generator([], senders, workers)
            queries0 = _query_totals(dep)
            for gen in gens.values():
                gen.step(1.0, target=0.0)  # warm-up: the reachable chats' bursts open here
            warm = _query_delta(_query_totals(dep), queries0)
            warm_rows = _due_rows(dep)
            log(f"  notify planning {setup} warm-up: {warm_rows} due rows; queries "
                + ", ".join(f"{q} {warm[q]['count']} ({warm[q]['mean_ms']} ms)"
                            for q in PLANNER_QUERIES if q in warm))
            watch = Watch(dep)
            for run in range(runs):
                # ABBA: neither variant always runs first.
                order = VARIANTS if run % 2 == 0 else VARIANTS[::-1]
                for variant in order:
                    result.steps.append(_planning_step(dep, gens[variant], variant, run,
                                                      duration))
            result.daemons = watch.figures()
            total = _query_delta(_query_totals(dep), queries0)
            received = hook.stats()
        finally:
            for gen in gens.values():
                gen.close()
        rows = _due_rows(dep)
    by_variant: dict[str, Any] = {}
    for variant in VARIANTS:
        steps = [s for s in result.steps if s["variant"] == variant]
        by_variant[variant] = {
            **{key: round(statistics.median(s[key] for s in steps), 2)
               for key in ("commit_rate", "rtt_p50", "rtt_p99", "daemon_us_per_message")},
            "committed": sum(s["committed"] for s in steps),
            "all_stored": all(s["stored_matches"] for s in steps),
            "errors": sum(s["send_errors"] + s["unanswered"] for s in steps),
            **{q: sum(s["queries"].get(q, {}).get("count", 0) for s in steps)
               for q in PLANNER_QUERIES},
            "due_rows_added": sum(s["due_rows_added"] for s in steps),
        }
    result.summary = {
        "variants": by_variant, "warmup_queries": {q: warm.get(q) for q in PLANNER_QUERIES},
        "warmup_due_rows": warm_rows, "due_rows": rows,
        "expected_due_rows": rooms * (members - 1),
        "queries": {q: total.get(q) for q in PLANNER_QUERIES},
        "messages": sum(v["committed"] for v in by_variant.values()),
        "webhook_posts": received["posts"],
        "rate_ratio": round(by_variant["reachable"]["commit_rate"]
                            / max(1.0, by_variant["unreachable"]["commit_rate"]), 3),
    }
    return result


def _planning_step(dep: Deployment, gen: Generator, variant: str, run: int,
                   duration: float) -> dict[str, Any]:
    before, _ = _stored(dep)
    rows0 = _due_rows(dep)
    queries0 = _query_totals(dep)
    cpu0 = [d.cpu() for d in dep.daemons]
    watch = Watch(dep)
    step = gen.step(duration, target=0.0)
    cpu = sum(d.cpu() - c for d, c in zip(dep.daemons, cpu0, strict=True))
    row = _step_row(step, watch.cpu_percent())
    stored = _stored(dep)[0] - before
    row.update(variant=variant, stored=stored, stored_matches=stored == step.committed,
               due_rows_added=_due_rows(dep) - rows0,
               queries=_query_delta(_query_totals(dep), queries0),
               daemon_us_per_message=round(cpu * 1e6 / max(1, step.committed), 1))
    log(f"  notify planning {dep.setup} run {run + 1} {variant:>11}: "
        f"{step.commit_rate:,.0f} msg/s committed "
        f"({'all stored' if row['stored_matches'] else 'MISMATCH'}), "
        f"send->sent p50 {step.rtt_p50:.1f} p99 {step.rtt_p99:.1f} ms, "
        f"daemon {row['daemon_us_per_message']} us/msg ({row['daemon_cpu_percent']} %); "
        + ", ".join(f"{q} {row['queries'].get(q, {}).get('count', 0)}"
                    for q in PLANNER_QUERIES)
        + f", due rows +{row['due_rows_added']}, errors {step.send_errors}, "
          f"unanswered {step.unanswered}")
    return row


# -- dispatch: K due rows, one or two daemons, a receiver that counts ids -------------


async def _dispatch_chats(base_url: str, chats: int) -> list[str]:
    """An owner, ``chats`` chats and one message by the owner in each (what is due)."""
    async with aiohttp.ClientSession() as session:
        api = Api(session, base_url)
        owner = await api.account("d" + secrets.token_hex(4))
        uris = [await api.new_chat(owner, f"dispatch {c}") for c in range(chats)]
        for uri in uris:
            status, body = await api.call("POST", f"/api/chats/{uri}/messages",
                                          {"message": "who is away?"}, owner.token)
            if status != 201:
                raise RuntimeError(f"post: {status} {body}")
    return uris


def _load_due(db: str, uris: list[str], due: int, url: str) -> float:
    """``due`` users (straight into the store), members of the chats in turn, each with a
    webhook to ``url`` and one due row already past its time; the monotonic commit time."""
    prefix = "d" + secrets.token_hex(4) + "_"
    conn = psycopg2.connect(db.split("?")[0])
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM chats WHERE uri = ANY(%s) ORDER BY id", (uris,))
            chat_ids = [int(r[0]) for r in cur.fetchall()]
            cur.execute("""INSERT INTO users (username, display_name, password_hash, created_at)
                           SELECT %s || i, %s || i, '!', now() FROM generate_series(1, %s) i
                           RETURNING id""", (prefix, prefix, due))
            ids = [int(r[0]) for r in cur.fetchall()]
            cur.execute("""INSERT INTO members (chat_id, user_id, joined_at)
                           SELECT (%s::bigint[])[1 + (u.n %% %s)], u.id, now()
                             FROM unnest(%s::bigint[]) WITH ORDINALITY u(id, n)""",
                        (chat_ids, len(chat_ids), ids))
            cur.execute("""INSERT INTO notify_settings (user_id, level, delay, webhook_url)
                           SELECT id, 'all', 0, %s FROM unnest(%s::bigint[]) id""", (url, ids))
            cur.execute("""INSERT INTO notify_due (nid, user_id, chat_id, first_seq, created_at,
                                                   due_at)
                           SELECT 'n_' || %s || m.user_id, m.user_id, m.chat_id, 1, now(),
                                  now() - interval '1 second'
                             FROM members m WHERE m.user_id = ANY(%s)""", (prefix, ids))
        return time.monotonic()
    finally:
        conn.close()


def dispatch(setup: str, due: int, chats: int = 10, explain_rows: int = 0,
             timeout: float = 600.0, runs: int = 3) -> Result:
    """``due`` rows already due for as many members: the time until the receiver has every
    id, notifications a second, duplicates, each daemon's share; ``runs`` times on the same
    daemons (fresh members and rows each time; the figures are the median run's, the
    rate's spread over all); optionally the claim's plan over ``explain_rows`` rows."""
    result = Result("notify", setup, {"part": "dispatch", "due": due, "chats": chats,
                                      "batch": BATCH, "interval": INTERVAL,
                                      "explain_rows": explain_rows, "runs": runs})
    with hook_receiver() as hook, deployment(setup, options=OPTIONS, metrics=True) as dep:
        uris = asyncio.run(_dispatch_chats(dep.daemons[0].base_url, chats))
        time.sleep(1.0)
        # What the daemons use doing nothing (their loops, sweeps), taken off below.
        idle0, idle_at = [d.cpu() for d in dep.daemons], time.monotonic()
        time.sleep(3.0)
        idle = sum(d.cpu() - c for d, c in zip(dep.daemons, idle0, strict=True)) / (
            time.monotonic() - idle_at)
        watch = Watch(dep)
        for run in range(max(1, runs)):
            result.steps.append(_dispatch_run(dep, hook, uris, due, idle, timeout, run))
        result.daemons = watch.figures()
        claim = claim_plan(dep.db, explain_rows) if explain_rows else None
    rates = sorted((s["per_s"] or 0.0, i) for i, s in enumerate(result.steps))
    result.summary = dict(result.steps[rates[len(rates) // 2][1]])
    result.summary["per_s_runs"] = [s["per_s"] for s in result.steps]
    result.summary["duplicates"] = sum(s["duplicates"] for s in result.steps)
    result.summary["failures"] = sum(s["failures"] for s in result.steps)
    if claim is not None:
        result.summary["claim"] = claim
    s = result.summary
    log(f"  notify dispatch {setup}: the median of {len(result.steps)} runs "
        f"{s['per_s_runs']}: {s['delivered']:,} of {due:,} delivered, the last after "
        f"{s['all_s']} s (first after {s['first_s']} s) = {s['per_s']} notifications/s "
        f"(steady {s['steady_per_s']}/s); duplicates {s['duplicates']}, failures "
        f"{s['failures']} (all runs), rows left {s['rows_left']}; per daemon "
        f"{s['sent_per_daemon']}; claims {s['queries'].get('claim_due')}; daemon CPU "
        f"{s['daemon_ms_per_notification']} ms a notification"
        + (f"; claim over {explain_rows:,} rows: {claim['median_ms']} ms, "
           f"index scan {claim['index_scan']}" if claim else ""))
    return result


def _dispatch_run(dep: Deployment, hook: Any, uris: list[str], due: int, idle: float,
                  timeout: float, run: int) -> dict[str, Any]:
    """One run: ``due`` fresh rows falling due at once, until the receiver has them all."""
    before = hook.stats()
    queries0 = _query_totals(dep)
    sent0 = [_sample(d, "chatire_notifications_sent_total") for d in dep.daemons]
    failed0 = sum(_sample(d, "chatire_notification_failures_total") for d in dep.daemons)
    cpu0, cpu_at = [d.cpu() for d in dep.daemons], time.monotonic()
    committed = _load_due(dep.db, uris, due, hook.url)
    deadline = committed + timeout
    stats = hook.stats()
    while stats["distinct"] - before["distinct"] < due and time.monotonic() < deadline:
        time.sleep(0.2)
        stats = hook.stats()
    time.sleep(3.0)  # a late second copy would show up as a duplicate
    stats = hook.stats()
    cpu = [d.cpu() - c for d, c in zip(dep.daemons, cpu0, strict=True)]
    busy = sum(cpu) - idle * (time.monotonic() - cpu_at)
    queries = _query_delta(_query_totals(dep), queries0)
    sent = [_sample(d, "chatire_notifications_sent_total") - s
            for d, s in zip(dep.daemons, sent0, strict=True)]
    failed = sum(_sample(d, "chatire_notification_failures_total")
                 for d in dep.daemons) - failed0
    left = _due_rows(dep)
    arrivals = [t - committed for t in stats["first_at"][len(before["first_at"]):]]
    this = {"posts": stats["posts"] - before["posts"],
            "duplicates": stats["duplicates"] - before["duplicates"]}
    summary = _dispatch_summary(due, arrivals, this, sent, failed, left, queries, cpu, busy)
    summary["run"] = run
    return summary


def _dispatch_summary(due: int, arrivals: list[float], stats: dict[str, Any],
                      sent: list[float], failed: float, left: int,
                      queries: dict[str, dict[str, float]], cpu: list[float],
                      busy: float) -> dict[str, Any]:
    delivered = len(arrivals)
    all_s = round(arrivals[-1], 2) if delivered == due and arrivals else None
    # The middle 80 %: the rate once every daemon's loop is going, without the wait for
    # the first tick and the last round's tail.
    steady = None
    if delivered >= 10:
        lo, hi = arrivals[delivered // 10], arrivals[(9 * delivered) // 10]
        steady = round((9 * delivered // 10 - delivered // 10) / (hi - lo), 1) if hi > lo else None
    ordered = sorted(arrivals)
    return {
        "delivered": delivered, "posts": stats["posts"], "duplicates": stats["duplicates"],
        "failures": int(failed), "rows_left": left,
        "first_s": round(arrivals[0], 2) if arrivals else None, "all_s": all_s,
        "p50_s": round(percentile(ordered, 0.5), 2), "per_s": round(due / all_s, 1)
        if all_s else None, "steady_per_s": steady,
        "sent_per_daemon": [int(s) for s in sent],
        "queries": {q: v["count"] for q, v in queries.items()
                    if q in ("claim_due", "prepare_due", "finish_due", "retry_due")},
        "query_ms": {q: v["mean_ms"] for q, v in queries.items()
                     if q in ("claim_due", "prepare_due", "finish_due")},
        "daemon_cpu_s": [round(c, 2) for c in cpu],
        # Daemon CPU beyond what they use idle, per notification sent.
        "daemon_ms_per_notification": round(1000 * busy / max(1, delivered), 2),
    }


# -- the claim statement's plan -----------------------------------------------------------


class _Cursor:
    """chatire.store.cursor.Cursor over a plain psycopg2 cursor, so the daemon's own
    claim_due runs here: its first statement EXPLAINed (ANALYZE, BUFFERS) if asked,
    every statement timed."""

    dialect = "postgresql"

    def __init__(self, cur: Any, explain: bool = False) -> None:
        self._cur = cur
        self._explain = explain
        self._rows: list[tuple[Any, ...]] = []
        self.plan: list[str] = []
        self.seconds = 0.0

    async def execute(self, sql: str, params: Sequence[Any] = (), *,
                      alone: bool = False) -> None:
        if self._explain and not self.plan:
            self._cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            self.plan = [str(r[0]) for r in self._cur.fetchall()]
            self._rows = []  # as if nothing were due: claim_due stops here
            return
        started = time.perf_counter()
        self._cur.execute(sql, params)
        self._rows = list(self._cur.fetchall()) if self._cur.description else []
        self.seconds += time.perf_counter() - started

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def time(self, value: Any) -> datetime:
        return value  # type: ignore[no-any-return]


def claim_plan(db: str, rows: int, due_every: int = 100, repeats: int = 20) -> dict[str, Any]:
    """``rows`` committed due rows, none due before an hour from now (the daemons leave them
    alone), one in ``due_every`` due at the moment this claims as of: the plan of
    chatire.store.notify.claim_due and its time (with its commit) over ``repeats`` claims.

    The rows are for the users there are, in chats made for them (one open row per member
    per chat); rows and chats are deleted afterwards. (Not for new users: deleting a user
    looks for their rows by ``user_id`` alone, which no index of notify_due serves, so
    deleting 100,000 of them scans the table 100,000 times.)"""
    conn = psycopg2.connect(db.split("?")[0])
    prefix = "p" + secrets.token_hex(4)
    try:
        cur = conn.cursor()
        cur.execute("SELECT array_agg(id ORDER BY id) FROM users")
        users = cur.fetchone()[0]
        period = 3600
        base = datetime.now(UTC) + timedelta(hours=1)
        started = time.monotonic()
        cur.execute("""WITH c AS (
                           INSERT INTO chats (uri, title, owner_id, created_at, last_activity_at)
                           SELECT %s || i, 'claim plan', %s, now(), now()
                             FROM generate_series(1, %s) i RETURNING id)
                       INSERT INTO notify_due (nid, user_id, chat_id, first_seq, created_at,
                                               due_at)
                       SELECT 'n_' || %s || '_' || c.id || '_' || u.id, u.id, c.id, 1, now(),
                              %s + ((c.id * 7919 + u.id) %% %s) * interval '1 second'
                         FROM c, unnest(%s::bigint[]) u(id) LIMIT %s""",
                    (prefix, users[0], -(-rows // len(users)), prefix, base, period, users,
                     rows))
        conn.commit()
        conn.autocommit = True
        cur.execute("ANALYZE notify_due")  # as autovacuum would, after this many rows
        conn.autocommit = False
        loaded = time.monotonic() - started
        # As of this moment, about one row in due_every is due.
        at = base + timedelta(seconds=period / due_every)
        cur.execute("SELECT count(*), count(*) FILTER (WHERE due_at <= %s) FROM notify_due",
                    (at,))
        present, due_then = cur.fetchone()
        conn.rollback()
        explaining = _Cursor(cur, explain=True)
        asyncio.run(claim_due(explaining, at, at + timedelta(seconds=HOLD), BATCH))
        conn.rollback()  # EXPLAIN ANALYZE ran the update: undone
        times = []
        claimed = 0
        for _ in range(repeats):
            timed = _Cursor(cur)
            started = time.perf_counter()
            claimed += len(asyncio.run(claim_due(timed, at, at + timedelta(seconds=HOLD),
                                                 BATCH)))
            conn.commit()
            times.append((time.perf_counter() - started) * 1000)
    finally:
        conn.rollback()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DELETE FROM notify_due WHERE nid LIKE %s", (f"n\\_{prefix}\\_%",))
            cur.execute("DELETE FROM chats WHERE uri LIKE %s", (prefix + "%",))
        conn.close()
    plan = explaining.plan
    executed = next((float(m.group(1)) for line in plan
                     if (m := re.search(r"Execution Time: ([0-9.]+) ms", line))), None)
    times.sort()
    return {"rows": int(present), "due": int(due_then), "load_s": round(loaded, 1),
            "plan": plan, "explain_ms": executed,
            "index_scan": any("Index Scan using notify_due_at" in line for line in plan),
            "seq_scan": any("Seq Scan" in line for line in plan),
            "median_ms": round(statistics.median(times), 3),
            "max_ms": round(times[-1], 3), "repeats": repeats, "claimed": claimed}
