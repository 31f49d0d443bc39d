"""The notify rate scenario (issue #15): due rows falling due at a steady rate (1,000 a second),
sent by one daemon to a webhook receiver on loopback; each notification's time from its due
time to its arrival, and none lost or sent twice. On PostgreSQL and on SQLite."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extras

from bench.daemon import Deployment, deployment
from bench.generator import percentile
from bench.notify import OPTIONS, _dispatch_chats, _query_delta, _query_totals, _sample
from bench.receiver import HookReceiver, hook_receiver
from bench.scenarios import Result, Watch, end_profile, log, start_profile
from chatire.notify.dispatcher import BATCH, FINISH_EVERY, INTERVAL, MAX_IN_FLIGHT

#: Seconds between the rows' commit and the first one's due time.
LEAD = 2.0
#: Seconds a run waits past its last due time for the last arrivals.
TAIL = 20.0


@contextmanager
def _store(db: str) -> Iterator[tuple[Any, str]]:
    """A DB-API connection to the deployment's store, and its placeholder."""
    if db.startswith("sqlite:"):
        conn: Any = sqlite3.connect(db.removeprefix("sqlite:///"), timeout=30)
        mark = "?"
    else:
        conn = psycopg2.connect(db.split("?")[0])
        mark = "%s"
    try:
        yield conn, mark
    finally:
        conn.close()


def _time(db: str, at: datetime) -> Any:
    """A time as the store keeps it (SQLite: ISO text, as chatire.store.sqlite writes it)."""
    if db.startswith("sqlite:"):
        return at.astimezone(UTC).isoformat(timespec="microseconds")
    return at


def _insert(conn: Any, mark: str, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Rows inserted by one statement, as a multi-row VALUES (SQLite: executemany)."""
    cur = conn.cursor()
    if mark == "?":
        cur.executemany(sql.replace("%s", mark), rows)
    else:
        head, values = sql.split(" VALUES ")
        psycopg2.extras.execute_values(cur, head + " VALUES %s", rows,
                                       template=values, page_size=5000)
    conn.commit()


def _members(db: str, uris: list[str], users: int, url: str) -> list[tuple[int, int]]:
    """``users`` users (straight into the store), members of every chat, each with a webhook
    to ``url`` at level ``all``: the (user id, chat id) pairs, each one open burst at most."""
    prefix = "r" + secrets.token_hex(4) + "_"
    now = _time(db, datetime.now(UTC))
    with _store(db) as (conn, mark):
        cur = conn.cursor()
        marks = ", ".join([mark] * len(uris))
        cur.execute(f"SELECT id FROM chats WHERE uri IN ({marks}) ORDER BY id", uris)
        chats = [int(r[0]) for r in cur.fetchall()]
        _insert(conn, mark, "INSERT INTO users (username, display_name, password_hash, "
                "created_at) VALUES (%s, %s, '!', %s)",
                [(f"{prefix}{i}", f"{prefix}{i}", now) for i in range(users)])
        cur = conn.cursor()
        cur.execute(f"SELECT id FROM users WHERE username LIKE {mark} ORDER BY id",
                    (prefix + "%",))
        ids = [int(r[0]) for r in cur.fetchall()]
        _insert(conn, mark, "INSERT INTO members (chat_id, user_id, joined_at) "
                "VALUES (%s, %s, %s)", [(c, u, now) for c in chats for u in ids])
        _insert(conn, mark, "INSERT INTO notify_settings (user_id, level, delay, webhook_url) "
                "VALUES (%s, 'all', 0, %s)", [(u, url) for u in ids])
    return [(u, c) for u in ids for c in chats]


def _feed(db: str, pairs: list[tuple[int, int]], rate: float,
          seconds: float) -> tuple[dict[str, float], float]:
    """One due row per pair for ``rate * seconds`` pairs, the i-th due at T0 + i / rate,
    T0 being LEAD seconds after the insert starts: {nid: due time (epoch)}, and how long
    the insert took."""
    started = time.time()
    first = started + LEAD
    tag = secrets.token_hex(3)
    due: dict[str, float] = {}
    rows = []
    now = _time(db, datetime.now(UTC))
    for i, (user, chat) in enumerate(pairs[:int(rate * seconds)]):
        at = first + i / rate
        nid = f"n_{tag}_{i}"
        due[nid] = at
        rows.append((nid, user, chat, now, _time(db, datetime.fromtimestamp(at, UTC))))
    with _store(db) as (conn, mark):
        _insert(conn, mark, "INSERT INTO notify_due (nid, user_id, chat_id, first_seq, "
                "created_at, due_at) VALUES (%s, %s, %s, 1, %s, %s)", rows)
    return due, time.time() - started


def _rows_left(db: str) -> int:
    with _store(db) as (conn, _):
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM notify_due")
        return int(cur.fetchone()[0])


def _run(dep: Deployment, hook: HookReceiver, pairs: list[tuple[int, int]], rate: float,
         seconds: float, number: int) -> dict[str, Any]:
    cpu0 = [d.cpu() for d in dep.daemons]
    queries0 = _query_totals(dep)
    watch = Watch(dep)
    spies = start_profile(dep, LEAD + seconds) if number == 0 else []
    due, insert_s = _feed(dep.db, pairs, rate, seconds)
    last_due = max(due.values())
    while time.time() < last_due + TAIL:
        time.sleep(0.5)
        got = hook.arrivals()
        if all(nid in got for nid in due):
            break
    time.sleep(2.0)  # a late second copy would show up as a duplicate
    end_profile(spies)
    got = hook.arrivals()
    mine = {nid: got[nid] for nid in due if nid in got}
    waits = sorted(at - due[nid] for nid, (at, _) in mine.items())
    arrived = sorted(at for at, _ in mine.values())
    first_due = min(due.values())
    span = (arrived[-1] - first_due) if arrived else 0.0
    cpu = sum(d.cpu() - c for d, c in zip(dep.daemons, cpu0, strict=True))
    row: dict[str, Any] = {
        "offered": len(due), "delivered": len(mine), "lost": len(due) - len(mine),
        "duplicates": sum(int(copies) - 1 for _, copies in mine.values()),
        "insert_s": round(insert_s, 2),
        "sent_per_s": round(len(mine) / span, 1) if span > 0 else 0.0,
        "p50_s": round(percentile(waits, 0.5), 3), "p99_s": round(percentile(waits, 0.99), 3),
        "max_s": round(waits[-1], 3) if waits else 0.0,
        "early": sum(w < 0 for w in waits),  # sent before its due time: must be 0
        "daemon_ms_per_notification": round(1000 * cpu / max(1, len(mine)), 2),
        "daemon_cpu_percent": [round(c, 1) for c in watch.cpu_percent()],
        "queries": {q: v for q, v in _query_delta(_query_totals(dep), queries0).items()
                    if q in ("claim_due", "prepare_due", "finish_due", "retry_due")},
    }
    log(f"  notify rate {dep.setup} run {number + 1}: {row['delivered']:,} of {len(due):,} "
        f"at {rate:,.0f}/s (insert {row['insert_s']} s) -> {row['sent_per_s']:,}/s sent; "
        f"due->arrival p50 {row['p50_s']} p99 {row['p99_s']} max {row['max_s']} s; lost "
        f"{row['lost']} dup {row['duplicates']} early {row['early']}; daemon "
        f"{row['daemon_ms_per_notification']} ms CPU a notification "
        f"({row['daemon_cpu_percent']} %); "
        + ", ".join(f"{q} {v['count']} x {v['mean_ms']} ms" for q, v in row["queries"].items()))
    return row


def rate(setup: str, per_s: float = 1000.0, seconds: float = 5.0, runs: int = 3,
         chats: int = 10) -> Result:
    """``runs`` times: ``per_s * seconds`` due rows whose due times follow each other at
    ``per_s`` a second, committed shortly before the first falls due; sent/s, due->arrival
    p50/p99/max, lost, duplicates."""
    result = Result("notify", setup, {"part": "rate", "rate": per_s, "seconds": seconds,
                                      "runs": runs, "chats": chats, "batch": BATCH,
                                      "interval": INTERVAL, "max_in_flight": MAX_IN_FLIGHT,
                                      "finish_every": FINISH_EVERY})
    with hook_receiver() as hook, deployment(setup, options=OPTIONS, metrics=True) as dep:
        uris = asyncio.run(_dispatch_chats(dep.daemons[0].base_url, chats))
        per_run = int(per_s * seconds)
        pairs = _members(dep.db, uris, -(-per_run * runs // chats), hook.url)
        time.sleep(1.0)
        watch = Watch(dep)
        sent0 = sum(_sample(d, "chatire_notifications_sent_total") for d in dep.daemons)
        for number in range(runs):
            result.steps.append(_run(dep, hook, pairs[number * per_run:(number + 1) * per_run],
                                     per_s, seconds, number))
        result.daemons = watch.figures()
        sent = sum(_sample(d, "chatire_notifications_sent_total") for d in dep.daemons) - sent0
        left = _rows_left(dep.db)
    steps = result.steps
    result.summary = {
        **{key: statistics.median(s[key] for s in steps)
           for key in ("sent_per_s", "p50_s", "p99_s", "max_s", "daemon_ms_per_notification")},
        **{key: sum(s[key] for s in steps)
           for key in ("offered", "delivered", "lost", "duplicates", "early")},
        "rows_left": left, "sent_counted": int(sent),
    }
    return result

