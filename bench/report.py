"""docs/benchmarks.md and docs/bench-latency.png, generated from one `python -m bench all` run."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cores, guard, report_crowd, report_load, sweep
from bench.cells import find as _find
from bench.cells import num as _num
from bench.cells import params as _params
from bench.daemon import REPO
from bench.rebind import tables as rebind_tables

DOC = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "bench-latency.png"
ANALYSIS = Path(__file__).with_name("analysis.md")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment() -> dict[str, Any]:
    """Date, machine, commit and load: what the figures depend on."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", "chatire"))
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "memory_mib": memory,
        "kernel": platform.release(), "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD") + (" (+ local changes)" if dirty else ""),
        "load_before": os.getloadavg()[0],
        "daemon_tree": os.environ.get("BENCH_DAEMON_TREE", ""),  # an A/B run's other tree
    }


def _target_rows(results: list[dict[str, Any]]) -> list[str]:
    rows = []

    def add(target: str, label: str, key: str, ok: Any, unit: str, digits: int = 0) -> None:
        r = _find(results, label)
        if r is None or "error" in r["summary"]:
            rows.append(f"| {target} | `{label}` | not measured | — |")
            return
        value = r["summary"].get(key)
        met = "met" if ok(value, r["summary"]) else "**not met**"
        rows.append(f"| {target} | `{label}` | {_num(value, digits)} {unit} | {met} |")

    def clean(s: dict[str, Any]) -> bool:
        return not any(s.get(k) for k in ("lost", "duplicates", "out_of_order", "unanswered"))

    add("fanout ≥ 50,000 deliveries/s, 1 chat x 1,000", "max production 1x1000", "max_rate",
        lambda v, s: v >= 50_000, "deliveries/s")
    add("fanout ≥ 50,000 deliveries/s, 100 chats x 10", "max production 100x10", "max_rate",
        lambda v, s: v >= 50_000, "deliveries/s")
    add("p99 ≤ 50 ms at 25,000/s, 1 x 1,000", "fanout production 1x1000 @25k", "p99",
        lambda v, s: v <= 50 and clean(s), "ms p99", 1)
    add("p99 ≤ 50 ms at 25,000/s, 100 x 10", "fanout production 100x10 @25k", "p99",
        lambda v, s: v <= 50 and clean(s), "ms p99", 1)
    idle = next((r for r in results if r.get("scenario") == "idle"
                 and r.get("setup") == "production"), None)
    if idle is not None and "error" not in idle["summary"]:
        s = idle["summary"]
        small = s["kib_per_connection"] <= 16 and not s["failed"]
        if small and s["opened"] >= 20_000:
            verdict = "met"
        elif small:
            verdict = (f"met per socket at {s['opened']:,} sockets (20,000 exceeds this "
                       "machine's hard open-file limit of 20,000 per process)")
        else:
            verdict = "**not met**"
        rows.append(f"| 20,000 idle sockets at ≤ 16 KiB each | `{idle['label']}` | "
                    f"{s['opened']:,} sockets, {s['kib_per_connection']:.1f} KiB each | "
                    f"{verdict} |")
    add("ingest ≥ 3,000 persisted msg/s", "ingest production", "commit_rate",
        lambda v, s: v >= 3000 and s.get("all_stored"), "msg/s")
    add("p99 ≤ 25 ms, 1,000 msg/s x 100 subscribers, 2 daemons (10 chats x 10)",
        "fanout production-2 10x10 @1k msg/s", "p99",
        lambda v, s: v <= 25 and clean(s), "ms p99", 1)
    add("same, read as 1 chat x 100 subscribers (100,000 deliveries/s)",
        "fanout production-2 1x100 @1k msg/s", "p99",
        lambda v, s: v <= 25 and clean(s), "ms p99", 1)
    rows += report_load.targets(results, clean)
    add("rebind after a lost broker connection < 30 s, 20,000 chats on one daemon",
        "rebind production-2 20000", "bus_ok_s",
        lambda v, s: v is not None and v < 30 and s.get("all_bound") and not s.get("lost"),
        "s until every chat was bound again", 1)
    timeline = _find(results, "timeline production 100k")
    target = "a 100,000-event chat: `events` pages and a resume stream, not loaded whole"
    if timeline is None or "error" in timeline["summary"]:
        rows.append(f"| {target} | `timeline production 100k` | not measured | — |")
    else:
        s = timeline["summary"]
        ok = (clean(s) and not s["errors"] and not s["closed"]
              and s["peak_growth_kib"] < s["rows_kib"])
        worst = max(p["p99"] for p in s["pages"].values())
        rows.append(f"| {target} | `{timeline['label']}` | pages p99 ≤ {worst:,.1f} ms; resume "
                    f"{s['resume_s']:.1f} s, RSS peak +{s['peak_growth_kib']:,} KiB for "
                    f"{s['rows_kib']:,} KiB of rows | {'met' if ok else '**not met**'} |")
    return rows + report_crowd.target_rows(results)


def _rss(r: dict[str, Any]) -> str:
    return "; ".join(f"{d['rss_before_kib'] // 1024}/{d['rss_peak_kib'] // 1024}/"
                     f"{d['rss_after_kib'] // 1024}" for d in r.get("daemons", []))


def _closes(summary: dict[str, Any]) -> str:
    cycles = summary.get("rss_after_each_close_kib", [])
    return " → ".join("/".join(str(kib // 1024) for kib in cycle) for cycle in cycles)


def _tables(results: list[dict[str, Any]]) -> list[str]:
    out = ["## Fanout", "",
           "Medians of the runs; latency = receive time - send time (the send timestamp "
           "rides in the message text). Lost, duplicated and out-of-order are summed over "
           "all runs and must be 0. CPU is percent of one core; RSS in MiB "
           "before/peak/after, per daemon.", "",
           "| run | set-up | chats x subs | target/s | delivered/s | p50 ms | p90 ms | "
           "p99 ms | max ms | lost | dup | ooo | daemon CPU % | generator CPU % | RSS MiB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["scenario"] != "fanout":
            continue
        s = r["summary"]
        if "error" in s:
            out.append(f"| `{r['label']}` | {r['setup']} | | | failed: {s['error']} "
                       "| | | | | | | | | | |")
            continue
        out.append(
            f"| `{r['label']}` | {r['setup']} | {_params(r)} | {_num(r['params']['rate'])} | "
            f"{_num(s['rate'])} | {_num(s['p50'], 1)} | {_num(s['p90'], 1)} | "
            f"{_num(s['p99'], 1)} | {_num(s['max'], 1)} | {s['lost']} | {s['duplicates']} | "
            f"{s['out_of_order']} | {s['daemon_cpu_percent']} | "
            f"{s['generator_cpu_percent']} | {_rss(r)} |")
    out += ["", "## Max", "",
            "The rate is raised x1.3 a step until p99 passes 250 ms, anything is lost, or "
            "the senders could not commit 90 % of the messages the rate asks for; a failed "
            "step is run once more before the search stops (the machine is shared). The "
            "highest delivered rate of a passing step is a search's result. The search runs "
            "three times on the same daemons, the second and third from two steps below "
            "the first's result: the figure is their median, their spread the noise.", "",
            "| run | set-up | chats x subs | highest sustained deliveries/s (median) | "
            "each search | steps of the first search (target → delivered, p99 ms) | "
            "RSS MiB |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if r["scenario"] != "max":
            continue
        first = [st for st in r["steps"] if st.get("search", 0) == 0]
        steps = ", ".join(f"{st['target'] / 1000:.0f}k→{st['rate'] / 1000:.1f}k "
                          f"({st['p99']:.0f})" for st in first)
        value = r["summary"].get("max_rate", r["summary"].get("error"))
        if value == 0 and r["steps"]:
            value = f"below the first step ({r['steps'][0]['target']:,.0f})"
        each = " / ".join(_num(v) for v in r["summary"].get("max_rates", [])) or "—"
        out.append(f"| `{r['label']}` | {r['setup']} | {_params(r)} | {_num(value)} | "
                   f"{each} | {steps} | {_rss(r)} |")
    out += cores.table(results)
    out += ["", "## Idle sockets", "",
            "Subscribed sockets held open (Bearer header on the upgrade, then `subscribe`). "
            "KiB per connection = (RSS held - RSS before) / sockets per daemon, the median "
            "of the cycles (open all, hold, close all; RSS before = before the first).", "",
            "| run | set-up | sockets | opened | failed | set-up rate /s | KiB per socket "
            "(each cycle) | "
            "RSS MiB before/peak/after close | RSS MiB after each close (leak check) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["scenario"] != "idle":
            continue
        s = r["summary"]
        if "error" in s:
            out.append(f"| `{r['label']}` | {r['setup']} | failed: {s['error']} | | | | | |")
            continue
        out.append(f"| `{r['label']}` | {r['setup']} | {_params(r)} | {s['opened']:,} | "
                   f"{s['failed']} | {_num(s['setup_per_s'])} | {s['kib_per_connection']:.1f} "
                   f"({' / '.join(f'{k:.1f}' for k in s.get('kib_per_connection_runs', []))}) | "
                   f"{_rss(r)} | {_closes(s)} |")
    out += ["", "## Ingest", "",
            "Closed-loop senders on the socket `send` path (each keeps a window of sends "
            "unanswered); committed = `sent` replies, checked against `count(*)` in the "
            "store after each run.", "",
            "| run | set-up | load | committed msg/s | all in the store | send→sent p50 ms | "
            "p99 ms | daemon CPU % | RSS MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["scenario"] != "ingest":
            continue
        s = r["summary"]
        if "error" in s:
            out.append(f"| `{r['label']}` | {r['setup']} | failed: {s['error']} | | | | | | |")
            continue
        out.append(f"| `{r['label']}` | {r['setup']} | {_params(r)}, window "
                   f"{r['params']['window']} | {_num(s['commit_rate'])} | "
                   f"{'yes' if s['all_stored'] else '**no**'} | {_num(s['rtt_p50'], 1)} | "
                   f"{_num(s['rtt_p99'], 1)} | {s['daemon_cpu_percent']} | {_rss(r)} |")
    out += report_load.mixed_table(results)
    out += _timeline_table(results)
    out += _notify_tables(results)
    out += report_load.rate_table(results)
    out += report_crowd.tables(results)
    out += sweep.table(results)
    out += rebind_tables(results)
    return out


def _part(r: dict[str, Any]) -> str:
    """planning or dispatch (a failed item has no params: its label says)."""
    return str(r.get("params", {}).get("part") or r["label"].split()[2])


def _notify_tables(results: list[dict[str, Any]]) -> list[str]:
    runs = [r for r in results if r["scenario"] == "notify"]
    if not runs:
        return []
    out = ["", "## Notifications", "",
           "**Planning on the post path.** Ingest as above (closed-loop senders, window 8, "
           "one a chat) into chats whose members all have level `all`, a 3,600 s delay and "
           "a webhook (*reachable*: bursts open, nothing falls due during the run), against "
           "as many chats whose members have no channel (*unreachable*: the planner has "
           "nobody to plan for); one deployment, the two sets interleaved run by run (ABBA). "
           "Members are written straight into the store; users, chats and settings go "
           "through the API. Store transactions are counted from the daemon's `/metrics` "
           "(`chatire_store_query_seconds_count{query=...}`), their mean time includes the "
           "wait for a pool connection. Daemon us/msg is daemon CPU per committed message.",
           "", "| run | set-up | chats x members | variant | committed msg/s | send→sent p50 ms "
           "| p99 ms | daemon us/msg | roster reads | due-row inserts | all in the store |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if _part(r) != "planning":
            continue
        s = r["summary"]
        if "error" in s:
            out.append(f"| `{r['label']}` | {r['setup']} | failed: {s['error']} "
                       "| | | | | | | | |")
            continue
        p = r["params"]
        for variant, v in s["variants"].items():
            out.append(f"| `{r['label']}` | {r['setup']} | {p['rooms']} x {p['members']} | "
                       f"{variant} | {_num(v['commit_rate'])} | {_num(v['rtt_p50'], 1)} | "
                       f"{_num(v['rtt_p99'], 1)} | {_num(v['daemon_us_per_message'])} | "
                       f"{v['roster']} | {v['add_due']} | "
                       f"{'yes' if v['all_stored'] and not v['errors'] else '**no**'} |")
        q = s["queries"]
        roster, add = q.get("roster") or {}, q.get("add_due") or {}
        out += ["", f"`{r['label']}`, the whole scenario (warm-up included, where the "
                f"reachable chats' bursts opened): {s['messages']:,} messages measured; "
                f"{roster.get('count', 0)} roster reads (mean {roster.get('mean_ms', 0)} ms), "
                f"{add.get('count', 0)} due-row inserts (mean {add.get('mean_ms', 0)} ms) "
                f"writing {s['due_rows']:,} rows (chats x (members - the sender): "
                f"{s['expected_due_rows']:,}); webhook posts during the runs: "
                f"{s['webhook_posts']}; reachable / unreachable committed rate: "
                f"{s['rate_ratio']:.2f}."]
    out += ["", "**Dispatch.** K members (written straight into the store, one due row each, "
            "already past its time, a webhook to a receiver on loopback: aiohttp in a process "
            "of its own, answering 200 and counting ids) and 1 or 2 daemons: time from the "
            "rows' commit until the receiver had every id, notifications a second (overall, "
            "and over the middle 80 %), duplicates (copies of an id beyond the first), the "
            "notifications each daemon sent, and daemon CPU per notification (less what the "
            "daemons use idle). Three runs on the same daemons, fresh members and rows each: "
            "the row is the median run's (by the rate), each run's rate in brackets; "
            "duplicates and failures are summed over the runs.", "",
            "| run | set-up | due rows | delivered | duplicates | failures | rows left | "
            "first after s | all after s | notifications/s (steady) | sent per daemon | "
            "claims | daemon CPU ms a notification |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    claims = []
    for r in runs:
        if _part(r) != "dispatch":
            continue
        s = r["summary"]
        if "error" in s:
            out.append(f"| `{r['label']}` | {r['setup']} | failed: {s['error']} "
                       "| | | | | | | | | | |")
            continue
        out.append(f"| `{r['label']}` | {r['setup']} | {r['params']['due']:,} | "
                   f"{s['delivered']:,} | {s['duplicates']} | {s['failures']} | "
                   f"{s['rows_left']} | {_num(s['first_s'], 2)} | {_num(s['all_s'], 1)} | "
                   f"{_num(s['per_s'], 1)} ({_num(s['steady_per_s'], 1)})"
                   + (f" [{' / '.join(_num(v, 1) for v in s['per_s_runs'])}]"
                      if len(s.get("per_s_runs", [])) > 1 else "") + " | "
                   f"{' / '.join(str(n) for n in s['sent_per_daemon'])} | "
                   f"{s['queries'].get('claim_due', 0)} | "
                   f"{_num(s['daemon_ms_per_notification'], 2)} |")
        if "claim" in s:
            claims.append((r, s["claim"]))
    for r, c in claims:
        out += ["", f"**The claim** (`chatire.store.notify.claim_due`, run as the daemon runs "
                f"it) over {c['rows']:,} committed rows of which {c['due']:,} due, after "
                f"`ANALYZE` (in `{r['label']}`): {c['median_ms']:.2f} ms median over "
                f"{c['repeats']} claims of {r['params']['batch']}, with the commit (slowest "
                f"{c['max_ms']:.2f} ms); index scan on `notify_due_at`: "
                f"{'yes' if c['index_scan'] else '**no**'}, sequential scan: "
                f"{'**yes**' if c['seq_scan'] else 'no'}. The update's plan (EXPLAIN ANALYZE, "
                f"BUFFERS; execution {_num(c['explain_ms'], 2)} ms):", "", "```",
                *c["plan"], "```"]
    return out


def _timeline_table(results: list[dict[str, Any]]) -> list[str]:
    runs = [r for r in results if r["scenario"] == "timeline"]
    mix = next((r["summary"]["kinds"] for r in runs if "kinds" in r["summary"]), {})
    total = sum(mix.values()) or 1
    out = ["", "## Timeline", "",
           "One chat whose seqs 1..N are mixed entries, written straight into the store as "
           "the daemon would have stored them (`bench/history.py`: "
           + ", ".join(f"{kind} {100 * n / total:.0f} %" for kind, n in
                       sorted(mix.items(), key=lambda kv: -kv[1]))
           + "). Pages: `GET /api/chats/{uri}/events?after=X&limit=500`, each checked (the "
           "500 seqs after X), one after another, median and p99 (the slowest, below 100 "
           "repeats) at the start, middle and end. Resume: one socket, `subscribe` with "
           "`after: 0`, until the chat's last seq; every seq counted as in order, "
           "duplicated, out of order or lost, and the daemon runs with its default "
           "slow-reader limit (1 MiB), so a resume that outran its reader would end with "
           "4008. RSS before/peak/after the resume (VmHWM after `clear_refs`); growth = "
           "peak - before, beside the chat's rows as stored (table payload, without "
           "indexes) and the frames the resume carried.", "",
           "| run | set-up | entries | page ms p50/p99: start · middle · end | resume s | "
           "first frame ms | frames/s | daemon us/frame | lost | dup | ooo | closed | "
           "RSS MiB before/peak/after (each resume) | peak growth KiB | rows KiB (with "
           "indexes) | frames KiB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r["summary"]
        if "error" in s:
            out.append(f"| `{r['label']}` | {r['setup']} | failed: {s['error']} "
                       "| | | | | | | | | | | | | |")
            continue
        pages = " · ".join(f"{p['p50']:.1f}/{p['p99']:.1f}" for p in s["pages"].values())
        out.append(
            f"| `{r['label']}` | {r['setup']} | {_params(r)} | {pages} | "
            f"{_num(s['resume_s'], 2)} | {_num(s['first_ms'])} | {_num(s['frames_per_s'])} | "
            f"{_num(s['daemon_us_per_frame'], 1)} | {s['lost']} | {s['duplicates']} | "
            f"{s['out_of_order']} | {s['closed']} | {_rss(r)} | "
            f"{_num(s['peak_growth_kib'])} | {_num(s['rows_kib'])} ({_num(s['tables_kib'])}) | "
            f"{_num(s['frame_kib'])} |")
    return out


def plot(results: list[dict[str, Any]], path: Path = PLOT) -> bool:
    """Latency percentiles against delivered rate, from the max scenario's steps."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for r in results:
        first = [st for st in r.get("steps", []) if st.get("search", 0) == 0]
        if r["scenario"] != "max" or not first:
            continue
        rates = [st["rate"] / 1000 for st in first]
        line = ax.plot(rates, [st["p99"] for st in first], marker="o",
                       label=f"{r['label']} p99")[0]
        ax.plot(rates, [st["p50"] for st in first], marker=".", linestyle="--",
                color=line.get_color(), label=f"{r['label']} p50")
    ax.axhline(250, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(50, color="grey", linewidth=0.8, linestyle=":")
    ax.set_yscale("log")
    ax.set_xlabel("delivered, thousands a second")
    ax.set_ylabel("latency, ms (log)")
    ax.set_title("chatire fanout: latency against rate (one run of `make bench`)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write(env: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """Rewrite docs/benchmarks.md (and the plot) from one run's results, each figure
    compared with the previous run's (bench/last-run.json, rewritten too)."""
    baseline = guard.previous(env, DOC)
    now = guard.figures(results)
    compared = guard.compare(baseline.get("values", {}), now)
    fell = [c.key for c in compared if c.fell]
    has_plot = plot(results)
    kind = "short (`make bench`)" if env.get("short") else "full (`python -m bench all`)"
    lines = [
        "# chatire benchmarks", "",
        "Generated by `python -m bench all` — do not edit by hand: every figure below "
        "comes from the run described here. The prose on where the time goes is "
        "`bench/analysis.md`, included at the end.", "",
        f"- date: {env['date']}; version: {kind}; took {env.get('seconds', '?')} s",
        f"- machine: {env['cpu']}, {env['cores']} cores, {env['memory_mib']:,} MiB, "
        f"Linux {env['kernel']}, Python {env['python']}",
        f"- commit: {env['commit']}",
        f"- load average when it started: {env['load_before']:.2f} (the machine is shared "
        "with other test runs, so the figures are noisy; each is a median of several runs)",
        *[f"- rerun alone afterwards: `{r['label']}` ({r['date']}, commit {r['commit']}, load "
          f"average {r['load_before']:.2f})" for r in env.get("reruns", [])],
        "- daemon: `twistd chatire --send-rate 0`, one process each, stopped by PID; the "
        "generator (picows on uvloop, 2 processes) runs on the same 2 cores",
        f"- against the previous run: {len(fell)} figure(s) fell by more than their spread"
        + (": " + ", ".join(f"`{k}`" for k in fell) if fell else "")
        + " (see *Against the previous run*)",
        "",
        "## Targets (PostgreSQL + RabbitMQ, one daemon process unless the label says "
        "production-2, generator included)", "",
        "| target | measured by | measured | verdict |", "|---|---|---|---|",
        *_target_rows(results), "",
        *guard.section(compared, baseline),
        *_tables(results), "",
    ]
    if has_plot:
        lines += ["## Latency against rate", "", "![latency percentiles against delivered "
                  "rate](bench-latency.png)", ""]
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text().rstrip(), ""]
    DOC.write_text("\n".join(lines))
    guard.save(env, now, baseline)
