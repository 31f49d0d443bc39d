"""The benchmarks' regression guard: a figure that fell by more than the spread of its own runs
is marked, one within it is not; the previous figures come from bench/last-run.json, or from
the tables of a docs/benchmarks.md written before it existed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import guard


def _fanout(label: str, rates: list[float], p99s: list[float]) -> dict[str, Any]:
    return {"scenario": "fanout", "setup": "production", "label": label, "params": {},
            "summary": {"rate": 0}, "steps": [{"rate": r, "p99": p} for r, p in
                                              zip(rates, p99s, strict=True)]}


def test_a_fall_beyond_the_spread_is_marked_and_one_within_it_is_not() -> None:
    now = guard.figures([_fanout("fanout a", [9_000, 10_000, 9_500], [20, 22, 30]),
                         _fanout("fanout b", [9_000, 10_000, 9_500], [20, 22, 30])])
    assert now["fanout a: deliveries/s"] == guard.Figure(9_500, 1_000, 3, True)
    assert now["fanout a: p99 ms"] == guard.Figure(22, 10, 3, False)
    verdicts = {c.key: c.verdict for c in guard.compare({
        "fanout a: deliveries/s": 10_600,  # fell by 1,100 > 1,000: marked
        "fanout b: deliveries/s": 10_400,  # fell by 900 <= 1,000: noise
        "fanout a: p99 ms": 11,  # rose by 11 > 10: latency is worse upwards
        "fanout b: p99 ms": 40,  # fell by 18 > 10: better
    }, now)}
    assert verdicts == {"fanout a: deliveries/s": "fell", "fanout b: deliveries/s": "within",
                        "fanout a: p99 ms": "fell", "fanout b: p99 ms": "better"}


def test_a_figure_measured_once_is_not_judged_and_a_new_one_is_new() -> None:
    idle = {"scenario": "idle", "setup": "production", "label": "idle x", "params": {},
            "summary": {"kib_per_connection": 30.0}, "steps": []}
    compared = guard.compare({"idle x: KiB per socket": 10.0},
                             guard.figures([idle, _fanout("fanout n", [1, 2], [3, 4])]))
    assert {c.key: c.verdict for c in compared} == {
        "idle x: KiB per socket": "not judged", "fanout n: deliveries/s": "new",
        "fanout n: p99 ms": "new"}
    assert not any(c.fell for c in compared)


def test_the_max_search_is_judged_by_one_of_its_steps() -> None:
    best = {"scenario": "max", "setup": "production", "label": "max y", "params": {},
            "summary": {"max_rate": 13_000}, "steps": []}
    now = guard.figures([best])
    assert [c.verdict for c in guard.compare({"max y: max deliveries/s": 16_900}, now)] == [
        "within"]  # one step (x1.3) below: the search's resolution
    assert [c.verdict for c in guard.compare({"max y: max deliveries/s": 17_500}, now)] == [
        "fell"]


def test_the_previous_run_is_read_from_last_run_json_and_not_from_itself(
        tmp_path: Path) -> None:
    path = tmp_path / "last-run.json"
    first = {"date": "d1", "commit": "c1"}
    guard.save(first, guard.figures([_fanout("fanout a", [5, 6, 7], [1, 2, 3])]),
               {"values": {}}, path)
    second = {"date": "d2", "commit": "c2"}
    baseline = guard.previous(second, tmp_path / "none.md", path)
    assert baseline["values"] == {"fanout a: deliveries/s": 6, "fanout a: p99 ms": 2}
    guard.save(second, guard.figures([_fanout("fanout a", [1, 2, 3], [1, 2, 3])]), baseline,
               path)
    # The docs rewritten from the second run again: still compared with the first.
    assert guard.previous(second, tmp_path / "none.md", path) == baseline


def test_without_last_run_json_the_previous_docs_tables_are_read(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("\n".join([
        "- date: 2026-12-02 07:28 UTC; version: short", "- commit: 5552fa7", "",
        "| run | set-up | chats x subs | target/s | delivered/s | p50 ms | p90 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
        "| `fanout production 1x1000 @25k` | production | 1 x 1000 | 25,000 | 24,678 | 9.3 | "
        "15.3 | 22.4 |", "",
        "| run | set-up | chats x subs | highest sustained deliveries/s | steps |",
        "|---|---|---|---|---|",
        "| `max production 1x1000` | production | 1 x 1000 | 72,770 | 20k→20.0k (26) |", ""]))
    baseline = guard.previous({"date": "now"}, doc, tmp_path / "missing.json")
    assert baseline == {"date": "2026-12-02 07:28 UTC", "commit": "5552fa7", "values": {
        "fanout production 1x1000 @25k: deliveries/s": 24_678.0,
        "fanout production 1x1000 @25k: p99 ms": 22.4,
        "max production 1x1000: max deliveries/s": 72_770.0}}
    section = "\n".join(guard.section(guard.compare(baseline["values"], guard.figures(
        [_fanout("fanout production 1x1000 @25k", [20_000, 20_100, 20_200], [22, 22, 23])])),
        baseline))
    assert "**Regressions:** `fanout production 1x1000 @25k: deliveries/s` 24,678 → 20,100" \
        in section


def test_every_scenario_is_judged_by_the_spread_of_its_own_runs() -> None:
    """Searches, cycles, waves, runs and rounds: each repeated figure has a spread."""
    results = [
        {"scenario": "max", "label": "max m", "params": {},
         "summary": {"max_rate": 20_000, "max_rates": [20_000, 18_000, 21_000]}, "steps": []},
        {"scenario": "idle", "label": "idle i", "params": {},
         "summary": {"kib_per_connection": 12.0, "kib_per_connection_runs": [12.0, 11.5, 12.4]},
         "steps": []},
        {"scenario": "subs", "label": "subs s", "params": {},
         "summary": {"kib_per_socket": 15.0, "kib_per_socket_runs": [15.0, 14.8, 15.3]},
         "steps": []},
        {"scenario": "presence", "label": "presence p", "params": {},
         "summary": {"broker_per_change": 0.3},
         "steps": [{"phase": "offline", "us_per_change": u, "broker_per_change": b}
                   for u, b in ((130, 0.25), (150, 0.3), (170, 0.35))]},
        {"scenario": "notify", "label": "notify d", "params": {"part": "dispatch"},
         "summary": {"per_s": 1_000}, "steps": [{"per_s": v} for v in (900, 1_000, 1_100)]},
        {"scenario": "sweep", "label": "sweep w", "params": {},
         "summary": {"full_runs": [80, 84, 90], "changed_runs": [1.0, 1.1, 1.3]}, "steps": []},
        {"scenario": "rebind", "label": "rebind r", "params": {},
         "summary": {"bus_ok_s_runs": [4.5, 5.0, None, 4.0]}, "steps": []},
        {"scenario": "owncopy", "label": "owncopy o", "params": {},
         "summary": {"with_daemon_us_runs": [40, 42, 44], "without_daemon_us_runs": [1, 2, 3]},
         "steps": []},
        {"scenario": "bindrate", "label": "bindrate b", "params": {},
         "summary": {"perchat bind x4": 2.9, "runs": {"perchat bind x4": [2.8, 2.9, 3.1]}},
         "steps": []},
    ]
    now = guard.figures(results)
    assert now["max m: max deliveries/s"] == guard.Figure(20_000, 3_000, 3, True)
    assert now["idle i: KiB per socket"] == guard.Figure(12.0, 0.9, 3, False)
    assert now["subs s: KiB per socket"].runs == 3
    assert now["presence p: broker messages a change"] == guard.Figure(0.3, 0.1, 3, False)
    assert now["notify d: notifications/s"] == guard.Figure(1_000, 200, 3, True)
    assert now["sweep w: changed chats ms"] == guard.Figure(1.1, 0.3, 3, False)
    assert now["rebind r: s until bound again"] == guard.Figure(4.5, 1.0, 3, False)
    assert now["owncopy o: daemon us a post with the own copy"].runs == 3
    assert now["bindrate b: perchat bind x4 s"] == guard.Figure(2.9, 0.3, 3, False)
    assert all(f.spread is not None for f in now.values())
    verdicts = {c.key: c.verdict for c in guard.compare({
        "max m: max deliveries/s": 23_500,  # the median fell by 3,500 > 3,000
        "idle i: KiB per socket": 11.5,  # rose by 0.5 <= 0.9: noise
        "rebind r: s until bound again": 3.0,  # 1.5 s slower > 1.0
    }, now) if c.before is not None}
    assert verdicts == {"max m: max deliveries/s": "fell", "idle i: KiB per socket": "within",
                        "rebind r: s until bound again": "fell"}
