"""The regression guard: each figure of a run beside the previous run's, marked when it fell by
more than the spread of its own runs (the noise this run measured).

The figures of a run are kept in bench/last-run.json beside docs/benchmarks.md; without it
the previous docs/benchmarks.md's tables are read instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LAST_RUN = Path(__file__).with_name("last-run.json")


@dataclass(frozen=True)
class Figure:
    """One figure of a run: its median, the spread (max - min) of its runs, which way is
    better. ``spread`` None: measured once, no noise known."""

    value: float
    spread: float | None
    runs: int
    higher_is_better: bool


@dataclass(frozen=True)
class Comparison:
    """A figure now and in the previous run, and the verdict."""

    key: str
    before: float | None
    now: Figure
    verdict: str  # fell, within, better, new, not judged

    @property
    def fell(self) -> bool:
        return self.verdict == "fell"


def _figure(values: Iterable[float], higher: bool, median: float | None = None) -> Figure:
    got = sorted(float(v) for v in values)
    if median is None:
        mid = len(got) // 2
        median = got[mid] if len(got) % 2 else (got[mid - 1] + got[mid]) / 2
    spread = got[-1] - got[0] if len(got) >= 2 else None
    return Figure(round(median, 3), None if spread is None else round(spread, 3), len(got),
                  higher)


#: Per scenario: (figure name, values of its runs from a result, higher is better).
_Reader = Callable[[dict[str, Any]], list[float]]


def _steps(key: str, where: Callable[[dict[str, Any]], bool] = lambda s: True) -> _Reader:
    return lambda r: [s[key] for s in r.get("steps", []) if where(s) and key in s]


def _variant(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s.get("variant") == name


FIGURES: dict[str, list[tuple[str, _Reader, bool]]] = {
    "fanout": [("deliveries/s", _steps("rate"), True), ("p99 ms", _steps("p99"), False)],
    "ingest": [("msg/s", _steps("commit_rate"), True),
               ("send→sent p99 ms", _steps("rtt_p99"), False)],
    "timeline": [("resume frames/s", _steps("frames_per_s"), True)],
    "idle": [("KiB per socket", lambda r: r["summary"].get("kib_per_connection_runs")
              or [r["summary"]["kib_per_connection"]], False)],
    "presence": [("daemon us a change", _steps("us_per_change",
                                              lambda s: s.get("phase") == "offline"), False),
                 ("broker messages a change", lambda r: _steps("broker_per_change")(r)
                  or [r["summary"]["broker_per_change"]], False)],
    "read": [("p99 ms", lambda r: [s["latency"]["p99"] for s in r.get("steps", [])], False),
             ("daemon us a mark", _steps("us_per_mark"), False)],
    "subs": [("KiB per socket", lambda r: r["summary"].get("kib_per_socket_runs")
              or [r["summary"]["kib_per_socket"]], False)],
    "sweep": [("full check ms", lambda r: r["summary"]["full_runs"], False),
              ("changed chats ms", lambda r: r["summary"]["changed_runs"], False)],
    "rebind": [("s until bound again", lambda r: [v for v in r["summary"]["bus_ok_s_runs"]
                                                  if v is not None], False)],
    "owncopy": [("daemon us a post with the own copy",
                 lambda r: r["summary"]["with_daemon_us_runs"], False),
                ("daemon us a post without", lambda r: r["summary"]["without_daemon_us_runs"],
                 False)],
    "mixed": [("plain deliveries/s", _steps("rate", _variant("plain")), True),
              ("mixed deliveries/s", _steps("rate", _variant("mixed")), True),
              ("mixed / plain", lambda r: r["summary"].get("ratio_runs", []), True)],
}
_NOTIFY: dict[str, list[tuple[str, _Reader, bool]]] = {
    "planning": [("reachable msg/s", _steps("commit_rate", _variant("reachable")), True),
                 ("unreachable msg/s", _steps("commit_rate", _variant("unreachable")), True)],
    "dispatch": [("notifications/s", lambda r: [s["per_s"] for s in r.get("steps", [])
                                                 if s.get("per_s")]
                  or ([r["summary"]["per_s"]] if r["summary"].get("per_s") else []), True)],
    "rate": [("sent/s", _steps("sent_per_s"), True),
             ("p99 due→arrival s", _steps("p99_s"), False)],
}


def figures(results: list[dict[str, Any]]) -> dict[str, Figure]:
    """``{"label: name": Figure}`` of every result that did not fail."""
    out: dict[str, Figure] = {}
    for r in results:
        if "error" in r.get("summary", {}) or "label" not in r:
            continue
        scenario = r["scenario"]
        if scenario == "max" and len(r["summary"].get("max_rates", [])) >= 2:
            out[f"{r['label']}: max deliveries/s"] = _figure(r["summary"]["max_rates"], True)
            continue
        if scenario == "bindrate":
            for way, values in r["summary"].get("runs", {}).items():
                out[f"{r['label']}: {way} s"] = _figure(values, False)
            continue
        if scenario == "max":
            # Searched once (an older run): its resolution is one step (x factor).
            value = float(r["summary"].get("max_rate", 0))
            factor = float(r.get("params", {}).get("factor", 1.3))
            if value:
                out[f"{r['label']}: max deliveries/s"] = Figure(
                    value, round(value * (factor - 1), 3), 1, True)
            continue
        readers = (_NOTIFY.get(r.get("params", {}).get("part", ""), [])
                   if scenario == "notify" else FIGURES.get(scenario, []))
        for name, read, higher in readers:
            try:
                values = read(r)
            except (KeyError, TypeError):
                continue
            if values:
                out[f"{r['label']}: {name}"] = _figure(values, higher)
    return out


def compare(before: dict[str, float], now: dict[str, Figure]) -> list[Comparison]:
    """Each figure of this run against the previous one's value: ``fell`` when it moved the
    worse way by more than its spread, ``better`` the other way, else ``within``."""
    out = []
    for key, fig in now.items():
        was = before.get(key)
        if was is None:
            verdict = "new"
        elif fig.spread is None:
            verdict = "not judged"
        else:
            change = fig.value - was if fig.higher_is_better else was - fig.value
            verdict = "fell" if change < -fig.spread else (
                "better" if change > fig.spread else "within")
        out.append(Comparison(key, was, fig, verdict))
    return out


def save(env: dict[str, Any], now: dict[str, Figure], baseline: dict[str, Any],
         path: Path = LAST_RUN) -> None:
    """This run's figures, and the previous ones it was compared with (so rewriting the
    docs from this same run compares with those again, not with itself)."""
    path.write_text(json.dumps({"date": env.get("date"), "commit": env.get("commit"),
                                "figures": {k: asdict(f) for k, f in now.items()},
                                "baseline": baseline}, indent=1, ensure_ascii=False) + "\n")


def previous(env: dict[str, Any], doc: Path, path: Path = LAST_RUN) -> dict[str, Any]:
    """The previous run's ``{"date", "commit", "values": {key: value}}`` (empty values if
    none is known): bench/last-run.json, or the tables of the docs it wrote."""
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("date") == env.get("date") and saved.get("commit") == env.get("commit"):
            return dict(saved.get("baseline") or {"values": {}})
        return {"date": saved.get("date"), "commit": saved.get("commit"),
                "values": {k: f["value"] for k, f in saved.get("figures", {}).items()}}
    if doc.exists():
        return from_doc(doc.read_text())
    return {"values": {}}


#: Columns of the docs' tables that hold a figure: (scenario, header) -> figure name.
_DOC_COLUMNS = {
    ("fanout", "delivered/s"): "deliveries/s", ("fanout", "p99 ms"): "p99 ms",
    ("max", "highest sustained deliveries/s"): "max deliveries/s",
    ("ingest", "committed msg/s"): "msg/s", ("ingest", "p99 ms"): "send→sent p99 ms",
}
_NUMBER = re.compile(r"^-?[0-9][0-9,]*(\.[0-9]+)?$")


def from_doc(text: str) -> dict[str, Any]:
    """The figures a docs/benchmarks.md written before last-run.json existed shows, read
    from its tables (rows whose first cell is a `label`)."""
    values: dict[str, float] = {}
    date = commit = None
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("- date: "):
            date = line.removeprefix("- date: ").split(";")[0].strip()
        elif line.startswith("- commit: "):
            commit = line.removeprefix("- commit: ").strip()
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
            continue
        if not cells[0].startswith("`"):
            continue
        label = cells[0].strip("`")
        scenario = label.split()[0]
        for name, cell in zip(header, cells, strict=False):
            figure = _DOC_COLUMNS.get((scenario, name))
            if figure and _NUMBER.match(cell):
                values[f"{label}: {figure}"] = float(cell.replace(",", ""))
    return {"date": date, "commit": commit, "values": values}


def section(compared: list[Comparison], baseline: dict[str, Any]) -> list[str]:
    """The docs' section: the figures that fell first, then every figure."""
    if not baseline.get("values"):
        return ["## Against the previous run", "", "No previous run to compare with.", ""]
    fell = [c for c in compared if c.fell]
    out = ["## Against the previous run", "",
           f"Previous run: {baseline.get('date') or '?'}, commit {baseline.get('commit') or '?'}. "
           "A figure **fell** when it moved the worse way by more than the spread (max - min) "
           "of its own runs in this run (each scenario runs at least three times: runs, "
           "cycles, waves, searches or rounds); a figure measured once is not judged.", ""]
    if fell:
        out += ["**Regressions:** " + "; ".join(
            f"`{c.key}` {_n(c.before)} → {_n(c.now.value)} (spread {_n(c.now.spread)})"
            for c in fell), ""]
    else:
        out += ["**Regressions:** none beyond the noise.", ""]
    out += ["| figure | previous | now (median) | spread (runs) | verdict |",
            "|---|---|---|---|---|"]
    for c in compared:
        verdict = "**fell**" if c.fell else c.verdict
        out.append(f"| `{c.key}` | {_n(c.before)} | {_n(c.now.value)} | "
                   f"{_n(c.now.spread)} ({c.now.runs}) | {verdict} |")
    return [*out, ""]


def _n(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
