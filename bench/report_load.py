"""The docs' rows and tables of issue #15: the mixed timeline load, notifications at a rate."""

from __future__ import annotations

from typing import Any

from bench.cells import num as _num
from bench.cells import params as _params


def targets(results: list[dict[str, Any]],
                             clean: Any) -> list[str]:
    """Issue #15's targets: the mixed timeline load, and notifications at 1,000 a second."""
    rows = []
    target = ("20 % edits/reactions/deletes: deliveries/s within 15 % of plain messages, "
              "100 x 10")
    mixed = next((r for r in results if r["scenario"] == "mixed"), None)
    if mixed is None or "error" in mixed["summary"]:
        label = mixed["label"] if mixed else "mixed production 100x10 @20k"
        rows.append(f"| {target} | `{label}` | not measured | — |")
    else:
        s = mixed["summary"]
        both_clean = all(not s.get(f"{v}_{k}") for v in ("plain", "mixed")
                         for k in ("lost", "duplicates", "out_of_order", "unanswered"))
        ok = s["ratio"] >= 0.85 and both_clean
        rows.append(f"| {target} | `{mixed['label']}` | mixed {_num(s['mixed_rate'])} vs plain "
                    f"{_num(s['plain_rate'])} deliveries/s = {s['ratio']:.2f} (runs "
                    f"{' '.join(f'{x:.2f}' for x in s['ratio_runs'])}) | "
                    f"{'met' if ok else '**not met**'} |")
    for r in results:
        if r["scenario"] != "notify" or r.get("params", {}).get("part") != "rate":
            continue
        s = r["summary"]
        target = (f"1,000 due notifications/s ({r['setup']}): none lost or twice, p99 "
                  "due→arrival ≤ 1 s")
        if "error" in s:
            rows.append(f"| {target} | `{r['label']}` | not measured | — |")
            continue
        ok = not s["lost"] and not s["duplicates"] and s["p99_s"] <= 1.0 and not s["rows_left"]
        rows.append(f"| {target} | `{r['label']}` | {_num(s['sent_per_s'])} sent/s, p99 "
                    f"{s['p99_s']:.2f} s, lost {s['lost']}, dup {s['duplicates']} | "
                    f"{'met' if ok else '**not met**'} |")
    return rows


def mixed_table(results: list[dict[str, Any]]) -> list[str]:
    runs = [r for r in results if r["scenario"] == "mixed"]
    if not runs:
        return []
    out = ["", "## Mixed timeline load", "",
           "Fanout as above, on one deployment, interleaved run by run (ABBA): *plain* sends "
           "messages only; *mixed* makes that share of each sender's events edits, reactions "
           "and deletes (in turn) of its own earlier messages, over HTTP (the socket has no "
           "frame for them), the rest messages. Deliveries count every frame of a chat's "
           "timeline (messages and events), each checked by seq: lost, duplicated, out of "
           "order. Latency is measured on messages and edits (their text carries the send "
           "time).", "",
           "| run | variant | chats x subs | target/s | delivered/s | p50 ms | p99 ms | lost | "
           "dup | ooo | unanswered | daemon us/delivery | daemon CPU % |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r["summary"]
        if "error" in s:
            out.append(f"| `{r['label']}` | failed: {s['error']} | | | | | | | | | | | |")
            continue
        for v in ("plain", "mixed"):
            out.append(f"| `{r['label']}` | {v} | {_params(r)} | {_num(r['params']['rate'])} | "
                       f"{_num(s[f'{v}_rate'])} | {_num(s[f'{v}_p50'], 1)} | "
                       f"{_num(s[f'{v}_p99'], 1)} | {s[f'{v}_lost']} | "
                       f"{s[f'{v}_duplicates']} | {s[f'{v}_out_of_order']} | "
                       f"{s[f'{v}_unanswered']} | {_num(s[f'{v}_daemon_us_per_delivery'], 1)} | "
                       f"{s[f'{v}_daemon_cpu_percent']} |")
    return out


def rate_table(results: list[dict[str, Any]]) -> list[str]:
    runs = [r for r in results if r["scenario"] == "notify"
            and (r.get("params", {}).get("part") == "rate" or " rate " in r.get("label", ""))]
    if not runs:
        return []
    out = ["", "**At a rate.** Due rows whose due times follow each other at the given rate "
           "(written straight into the store shortly before the first falls due, one per "
           "member per chat, a webhook each to the receiver above), one daemon; per run: "
           "sent/s (delivered / (last arrival - first due time)), due time → arrival at the "
           "receiver, rows never delivered, ids received twice. Medians of the runs; lost "
           "and duplicates summed.", "",
           "| run | set-up | due/s x s (runs) | sent/s | p50 s | p99 s | max s | lost | dup | "
           "rows left | daemon ms CPU a notification | store transactions (mean ms) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r["summary"]
        if "error" in s:
            out.append(f"| `{r['label']}` | {r['setup']} | failed: {s['error']} "
                       "| | | | | | | | | |")
            continue
        p = r["params"]
        q = r["steps"][0].get("queries", {}) if r["steps"] else {}
        out.append(f"| `{r['label']}` | {r['setup']} | {_num(p['rate'])} x {p['seconds']:g} "
                   f"({p['runs']}) | {_num(s['sent_per_s'])} | {s['p50_s']:.2f} | "
                   f"{s['p99_s']:.2f} | {s['max_s']:.2f} | {s['lost']} | {s['duplicates']} | "
                   f"{s['rows_left']} | {_num(s['daemon_ms_per_notification'], 2)} | "
                   + ", ".join(f"{k} {v['count']} ({v['mean_ms']})" for k, v in q.items())
                   + " |")
    return out
