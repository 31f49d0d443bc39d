"""`python -m bench all`: every scenario on every set-up, then docs/benchmarks.md rewritten."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import notify, notify_rate, presence, reads, rebind, report, scenarios, subs, sweep
from bench.cores import Pinning
from bench.mixed import mixed
from bench.scenarios import Result, log


def plan(short: bool, workers: int) -> list[tuple[str, Callable[[], Result]]]:
    """(label, run) of every measurement; the short plan fits in a few minutes."""
    runs = 5 if short else 7
    duration = 3.0 if short else 8.0
    step = 3.0 if short else 5.0
    idle_conns = 3000 if short else 10_000
    max_steps = 6 if short else 10
    fan = scenarios.fanout
    items: list[tuple[str, Callable[[], Result]]] = [
        ("fanout embedded 1x1000 @25k",
         lambda: fan("embedded", 1, 1000, 25_000, duration, runs, workers)),
        ("fanout production 1x1000 @25k",
         lambda: fan("production", 1, 1000, 25_000, duration, runs, workers)),
        ("fanout production 100x10 @25k",
         lambda: fan("production", 100, 10, 25_000, duration, runs, workers)),
        ("fanout production-2 10x10 @1k msg/s",
         lambda: fan("production-2", 10, 10, 10_000, duration, runs, workers)),
        ("fanout production-2 1x100 @1k msg/s",
         lambda: fan("production-2", 1, 100, 100_000, duration, runs, workers)),
        ("max embedded 1x1000",
         lambda: scenarios.max_rate("embedded", 1, 1000, 20_000, step, workers,
                                    max_steps=max_steps)),
        ("max production 1x1000",
         lambda: scenarios.max_rate("production", 1, 1000, 20_000, step, workers,
                                    max_steps=max_steps)),
        ("max production 100x10",
         lambda: scenarios.max_rate("production", 100, 10, 10_000, step, workers,
                                    max_steps=max_steps)),
        # What one core more buys (issue #15): the same search with the daemon and the
        # generator on one CPU, then with a CPU each.
        ("max production 100x10 one core",
         lambda: scenarios.max_rate("production", 100, 10, 5_000, step, workers,
                                    max_steps=max_steps, pinning=Pinning("0", "0"))),
        ("max production 100x10 a core each",
         lambda: scenarios.max_rate("production", 100, 10, 10_000, step, workers,
                                    max_steps=max_steps, pinning=Pinning("1", "0"))),
        ("max production-2 1x1000",
         lambda: scenarios.max_rate("production-2", 1, 1000, 20_000, step, workers,
                                    max_steps=max_steps)),
    ]
    # The 20,000-socket target on one daemon (19,900: the hard open-file limit here is
    # 20,000 a process); the others open and close twice (leak check).
    items.append(("idle production 19900",
                  lambda: scenarios.idle("production", 19_900, 100, workers, 3)))
    for setup in ("embedded", "production-2"):
        items.append((f"idle {setup} {idle_conns}",
                      lambda s=setup: scenarios.idle(s, idle_conns, 100, workers, 3)))  # type: ignore[misc]
    for setup in ("embedded", "production", "production-2"):
        items.append((f"ingest {setup}",
                      lambda s=setup: scenarios.ingest(s, 100, 1, 8, duration, 3, workers)))  # type: ignore[misc]
    # Issue #12: one chat of 100,000 mixed entries (and a fifth of it: the daemon's
    # growth during a resume must not follow the chat's length).
    repeats = 20 if short else 100
    resumes = 3
    sizes = [("embedded", 20_000), ("embedded", 100_000), ("production", 100_000)]
    if not short:
        sizes.insert(2, ("production", 20_000))
    for setup, events in sizes:
        items.append((f"timeline {setup} {events // 1000}k",
                      lambda s=setup, n=events: scenarios.timeline(s, n, repeats, resumes)))  # type: ignore[misc]
    # Issue #14: what planning notifications costs the post path (100 chats x 50 members
    # with a webhook each, against as many with nobody reachable), and how fast one and
    # two daemons send due rows (each claims 20 a second: K / 20 seconds for one daemon).
    items.append(("notify production planning 100x50",
                  lambda: notify.planning("production", 100, 50, 8, duration, 3, workers)))
    due = 1000 if short else 2000
    items.append((f"notify production dispatch {due}",
                  lambda: notify.dispatch("production", due, explain_rows=100_000)))
    items.append((f"notify production-2 dispatch {due}",
                  lambda: notify.dispatch("production-2", due)))
    # Issue #15: a fifth of the events edits, reactions and deletes, against plain
    # messages at the same set-up; and notifications falling due at 1,000 a second.
    items.append(("mixed production 100x10 @20k",
                  lambda: mixed("production", 100, 10, 20_000, duration, 3, workers)))
    seconds = 5.0 if short else 10.0
    for setup in ("production", "embedded"):
        items.append((f"notify {setup} rate 1k/s",
                      lambda s=setup: notify_rate.rate(s, 1000, seconds, 3)))  # type: ignore[misc]
    # Issue #15: presence in waves over two daemons, read marks between two devices,
    # and idle sockets of five subscriptions each with presence on: 19,900 sockets (the
    # hard open-file limit again) in the short run too, as the target asks; opening them
    # sends ~2.5 million presence frames, five minutes or so here.
    items.append(("presence production-2 5000",
                  lambda: presence.presence("production-2", 5000, 500, 1000, 1 if short else 3,
                                            3.0, workers)))
    items.append(("read production-2 1000",
                  lambda: reads.read("production-2", 1000, 50, 2.0, duration, runs, workers)))
    held = 19_900
    items.append((f"subs production {held}x5",
                  lambda: subs.subscriptions("production", held, held // 10, 5, workers)))
    # Issue #20: what one sweep costs a daemon following 20,000 chats, 10 of them active.
    items.append(("sweep production 20000", lambda: sweep.sweep("production", 20_000, 10)))
    # Issue #20: a daemon following 20,000 chats loses its broker connection (closed from
    # the broker's side, that connection only); the ways of binding that many; what the
    # daemon's own copy of its posts costs.
    items.append(("rebind production-2 20000", lambda: rebind.rebind(20_000)))
    items.append(("bindrate rabbitmq 5000", lambda: rebind.bind_ways(5000, 3)))
    items.append(("owncopy rabbitmq 10000x3", lambda: rebind.own_copy(10_000, 3)))
    return items


def run_all(*, short: bool, workers: int, write_docs: bool, json_path: Path,
            only: tuple[str, ...] = (), rerun: Path | None = None) -> int:
    """Run the plan (or the items whose label is, or starts with, one of the words of
    ``only``: "ingest production" is not "ingest production-2"); a failed item is
    recorded and the others still run.

    ``rerun``: a saved run whose items of the same labels are replaced by these, each
    named in its environment's ``reruns`` (date, load); the docs are then rewritten
    from it."""
    started = time.monotonic()
    environment = report.environment()
    results: list[dict[str, Any]] = []
    failures = 0
    for label, run in plan(short, workers):
        if only and not any(label == word or label.startswith(word + " ") for word in only):
            continue
        log(f"[{time.monotonic() - started:5.0f} s] {label}")
        try:
            results.append(asdict(run()))
        except Exception as e:  # one broken set-up must not hide the others' figures
            failures += 1
            log(f"  FAILED: {e!r}")
            results.append({"scenario": label.split()[0], "setup": label.split()[1],
                            "params": {}, "steps": [], "daemons": [],
                            "summary": {"error": repr(e)[:300]}, "label": label})
            continue
        results[-1]["label"] = label
    environment["seconds"] = round(time.monotonic() - started)
    environment["short"] = short
    if rerun is not None:
        environment, results = _replace(json.loads(rerun.read_text()), environment, results)
        json_path = rerun
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"environment": environment, "results": results}, indent=1))
    log(f"results in {json_path} ({environment['seconds']} s)")
    if write_docs:
        report.write(environment, results)
        log("docs/benchmarks.md and docs/bench-latency.png rewritten")
    return 1 if failures else 0


def _replace(saved: dict[str, Any], environment: dict[str, Any],
             results: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The saved run with these results in place of its items of the same labels."""
    fresh = {r["label"]: r for r in results}
    merged = [fresh.pop(r["label"], r) for r in saved["results"]] + list(fresh.values())
    env = saved["environment"]
    env.setdefault("reruns", []).extend(
        {"label": label, "date": environment["date"], "commit": environment["commit"],
         "load_before": environment["load_before"]} for label in (r["label"] for r in results))
    return env, merged
