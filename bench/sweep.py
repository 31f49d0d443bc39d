"""The sweep scenario: what one sweep costs a daemon that follows 20,000 chats, a few active.

The daemon's own query (chatire.store.changes.changed_chats, run through a Cursor over a
blocking connection) is timed against a migrated store of the production set-up: the
full check of every followed chat (what each sweep did before migration 9, and what the
first sweep still does) against the read of the chats that changed since the last mark,
with a few chats posted to between sweeps (by ``chatire_append``, the daemon's writer)
and with none. Rows and buffers come from EXPLAIN (ANALYZE, BUFFERS) of the same SQL.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

import psycopg2

from bench.daemon import deployment
from bench.scenarios import Result, log
from chatire.store.changes import changed_chats
from chatire.store.sqlstore import run_sync


class _Cursor:
    """chatire's Cursor protocol over a psycopg2 cursor in autocommit (a statement run
    ``alone``, as the daemon runs the sweep's); it keeps the last statement for EXPLAIN."""

    dialect = "postgresql"

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.sql = ""
        self.params: tuple[Any, ...] = ()

    async def execute(self, sql: str, params: Sequence[Any] = (), *,
                      alone: bool = False) -> None:
        self.sql, self.params = sql, tuple(params)
        self._cursor.execute(sql, self.params)

    def fetchone(self) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._cursor.fetchone()
        return row

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._cursor.fetchall()
        return rows

    def time(self, value: Any) -> Any:
        return value


def _timed(cur: _Cursor, since: int | None, uris: list[str]) -> tuple[float, int, dict[str, int]]:
    started = time.perf_counter()
    mark, seqs = run_sync(changed_chats(cur, since, uris))  # type: ignore[arg-type]
    return (time.perf_counter() - started) * 1000, mark, seqs


def _explain(raw: Any, cur: _Cursor) -> dict[str, Any]:
    """Rows read from chats and buffers touched by the statement ``cur`` ran last."""
    raw.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + cur.sql, cur.params)
    plan = raw.fetchone()[0][0]
    rows = 0
    scans: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        nonlocal rows
        if node.get("Relation Name") == "chats":
            rows += int(node["Actual Rows"] * node["Actual Loops"])
            scans.add(node["Node Type"] + (f" on {node['Index Name']}"
                                           if "Index Name" in node else ""))
        for child in node.get("Plans", []):
            walk(child)

    top = plan["Plan"]
    walk(top)
    return {"rows": rows, "buffers": top.get("Shared Hit Blocks", 0)
            + top.get("Shared Read Blocks", 0), "scans": sorted(scans),
            "ms": round(plan["Execution Time"], 2)}


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 2), "max": round(ordered[-1], 2)}


def sweep(setup: str = "production", chats: int = 20_000, active: int = 10,
          rounds: int = 30) -> Result:
    """``rounds`` sweeps of each kind over ``chats`` followed chats, ``active`` posted to."""
    result = Result("sweep", setup, {"chats": chats, "active": active, "rounds": rounds})
    with deployment(setup) as dep:
        conn = psycopg2.connect(dep.db.split("?")[0])
        conn.autocommit = True
        raw = conn.cursor()
        raw.execute("""INSERT INTO users (username, display_name, password_hash, created_at)
                       VALUES ('sweeper', 'sweeper', 'x', now()) RETURNING id""")
        user = raw.fetchone()[0]
        raw.execute("""INSERT INTO chats (uri, title, owner_id, created_at, last_activity_at)
                       SELECT 'sweep-' || g, 't', %s, now(), now()
                         FROM generate_series(1, %s) g""", (user, chats))
        raw.execute("SELECT id, uri FROM chats ORDER BY id")
        every = raw.fetchall()
        busy = random.Random(7).sample(every, active)
        raw.execute("""INSERT INTO members (chat_id, user_id, joined_at)
                       SELECT unnest(%s::bigint[]), %s, now()""", ([c for c, _ in busy], user))
        raw.execute("ANALYZE chats")
        uris = [uri for _, uri in every]
        cur = _Cursor(conn.cursor())
        _, mark, seqs = _timed(cur, None, uris)  # the first sweep, and a warm-up
        assert len(seqs) == chats
        full: list[float] = []
        changed: list[float] = []
        idle: list[float] = []
        found: list[int] = []
        stale: list[int] = []
        for _ in range(rounds):
            raw.execute("""SELECT count(*) FROM chatire_append(%s::bigint[], %s::bigint[], %s,
                           %s::text[], %s::bigint[], now())""",
                        ([c for c, _ in busy], [user] * active, ["m"] * active,
                         [None] * active, [None] * active))
            ms, mark, seqs = _timed(cur, mark, [])
            changed.append(ms)
            found.append(len(seqs))
            if not {uri for _, uri in busy} <= set(seqs):
                raise RuntimeError("a sweep missed a chat that changed")
            ms, mark, seqs = _timed(cur, mark, [])
            idle.append(ms)
            stale.append(len(seqs))
            ms, _, _ = _timed(cur, None, uris)
            full.append(ms)
        before = _explain(raw, cur)  # the last statement: the full check
        raw.execute("""SELECT count(*) FROM chatire_append(%s::bigint[], %s::bigint[], %s,
                       %s::text[], %s::bigint[], now())""",
                    ([c for c, _ in busy], [user] * active, ["m"] * active,
                     [None] * active, [None] * active))
        run_sync(changed_chats(cur, mark, []))  # type: ignore[arg-type]
        after = _explain(raw, cur)
        conn.close()
    result.summary = {"full_ms": _ms(full), "changed_ms": _ms(changed), "idle_ms": _ms(idle),
                      "full_runs": [round(v, 2) for v in full],
                      "changed_runs": [round(v, 2) for v in changed],
                      "idle_runs": [round(v, 2) for v in idle],
                      "found": max(found), "idle_rows": max(stale), "full_plan": before,
                      "changed_plan": after}
    log(f"  full {result.summary['full_ms']} ms, changed {result.summary['changed_ms']} ms, "
        f"idle {result.summary['idle_ms']} ms; rows {before['rows']} -> {after['rows']}")
    return result


def table(results: list[dict[str, Any]]) -> list[str]:
    """The docs' section for the sweep items."""
    runs = [r for r in results if r["scenario"] == "sweep"]
    if not runs:
        return []
    out = ["", "## Sweep", "",
           "One sweep of a daemon following N chats, A of them posted to (one message each) "
           "between sweeps: the daemon's own query, timed against the production set-up's "
           "store (`bench/sweep.py`; median and slowest of the rounds, with the round trip). "
           "Full check: every followed chat by uri, as each sweep did before migration 9 "
           "and the first sweep (and the one after a bus reconnect) still does. Changed: "
           "the chats whose `last_seq` moved since the previous sweep's mark, by the "
           "`chats_changed` index. Rows: rows of `chats` read (EXPLAIN ANALYZE); buffers: "
           "shared buffers touched. No change: a second sweep right after, with the most rows "
           "any returned (a chat comes back while a transaction older than its commit is "
           "open anywhere on the server).", "",
           "| run | chats followed | active | full check ms p50/max | rows | buffers | "
           "changed ms p50/max | rows | buffers | no change ms p50/max |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r["summary"]
        if "error" in s:
            out.append(f"| `{r['label']}` | failed: {s['error']} | | | | | | | | |")
            continue
        full, changed = s["full_plan"], s["changed_plan"]
        out.append(
            f"| `{r['label']}` | {r['params']['chats']:,} | {r['params']['active']} | "
            f"{s['full_ms']['p50']:.2f}/{s['full_ms']['max']:.2f} | {full['rows']:,} | "
            f"{full['buffers']:,} | {s['changed_ms']['p50']:.2f}/{s['changed_ms']['max']:.2f} "
            f"| {changed['rows']:,} | {changed['buffers']:,} | "
            f"{s['idle_ms']['p50']:.2f}/{s['idle_ms']['max']:.2f} "
            f"({s['idle_rows']} rows) |")
    return out
