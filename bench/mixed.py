"""The mixed scenario (issue #15): fanout where a share of the events are edits, reactions and
deletes (the timeline API), against plain messages on the same sockets, interleaved."""

from __future__ import annotations

import statistics
from typing import Any

from bench.daemon import deployment
from bench.generator import Generator
from bench.notify import _query_delta, _query_totals
from bench.scenarios import (
    Result,
    Watch,
    _check_open,
    _describe,
    _fanout_clients,
    _medians,
    _populate,
    _step_row,
    end_profile,
    log,
    start_profile,
)

#: The two variants, run in turn (ABBA) on one deployment.
VARIANTS = ("plain", "mixed")
#: Mixed deliveries a second must be at least this share of plain ones.
TARGET_RATIO = 0.85


def mixed(setup: str, rooms: int, subscribers: int, rate: float, duration: float, runs: int,
          workers: int, share: float = 0.2) -> Result:
    """R chats x S subscribers at ``rate`` deliveries a second: ``runs`` steps of plain
    messages and as many where ``share`` of each sender's events are edits, reactions and
    deletes of its own earlier messages; every frame checked (lost, duplicated, out of
    order) as in fanout."""
    result = Result("mixed", setup, {"rooms": rooms, "subscribers": subscribers, "rate": rate,
                                     "duration": duration, "runs": runs, "share": share})
    with deployment(setup, metrics=True) as dep:
        accounts, uris = _populate(dep, rooms)
        receivers, senders = _fanout_clients(dep, accounts, uris, subscribers,
                                             rate / subscribers)
        gen = Generator(receivers, senders, workers)
        try:
            _check_open(gen, len(receivers))
            # Warm-up: bindings, caches, and messages for the first edits to touch.
            gen.step(1.0, scale=0.2, target=rate * 0.2)
            gen.step(1.0, scale=0.2, target=rate * 0.2, mixed=share)
            watch = Watch(dep)
            for run in range(runs):
                for variant in (VARIANTS if run % 2 == 0 else VARIANTS[::-1]):
                    step_watch = Watch(dep)
                    queries0 = _query_totals(dep)
                    # Both variants, and four times the sending time: the backlog too.
                    spies = start_profile(dep, 4 * duration, variant) if run == 0 else []
                    step = gen.step(duration, target=rate,
                                    mixed=share if variant == "mixed" else 0.0)
                    end_profile(spies)
                    row = _step_row(step, step_watch.cpu_percent())
                    row["variant"] = variant
                    queries = _query_delta(_query_totals(dep), queries0)
                    row["queries"] = queries
                    row["transactions_per_event"] = round(sum(
                        q["count"] for q in queries.values()) / max(1, step.committed), 2)
                    result.steps.append(row)
                    log(f"  mixed {setup} {rooms}x{subscribers} @{rate:,.0f}/s run {run + 1} "
                        f"{variant:>5}: " + _describe(step, row)
                        + f"; errors {step.send_errors}; store transactions a committed "
                          f"event {row['transactions_per_event']}: "
                        + ", ".join(f"{q} {v['count']} ({v['mean_ms']} ms)"
                                    for q, v in sorted(queries.items(),
                                                       key=lambda kv: -kv[1]["count"])[:6]))
            result.daemons = watch.figures()
        finally:
            gen.close()
    by: dict[str, Any] = {variant: _medians([s for s in result.steps
                                             if s["variant"] == variant])
                          for variant in VARIANTS}
    plain, mix = by["plain"]["rate"], by["mixed"]["rate"]
    result.summary = {
        **{f"{variant}_{key}": value for variant, figures in by.items()
           for key, value in figures.items()},
        "ratio": round(mix / plain, 3) if plain else 0.0,
        "ratio_runs": [round(m["rate"] / p["rate"], 3) for p, m in zip(
            [s for s in result.steps if s["variant"] == "plain"],
            [s for s in result.steps if s["variant"] == "mixed"], strict=True) if p["rate"]],
    }
    ratios = result.summary["ratio_runs"]
    result.summary["ratio_spread"] = round(max(ratios) - min(ratios), 3) if ratios else 0.0
    result.summary["ratio_median"] = round(statistics.median(ratios), 3) if ratios else 0.0
    return result
