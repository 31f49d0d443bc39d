"""The read scenario (issue #15): `read` frames between each user's two devices, timed from
the send to the other device's arrival; store writes and broker messages counted."""

from __future__ import annotations

import statistics
import time
from itertools import pairwise
from typing import Any

from bench.crowd import crowd
from bench.crowd_gen import Crowd, daemon_cpu, ms, published, spread, store_queries
from bench.crowd_worker import Device
from bench.daemon import Deployment, deployment
from bench.scenarios import Result, Watch, log

#: Seconds after a run for the last `read` frames to arrive; a mark none covered by then
#: is lost (the window is 0.5 s: several windows late).
DRAIN = 3.0
#: Read marks up to this are kept (the chats' last seq; no message rows are needed).
LAST_SEQ = 10_000_000


def _read_layout(dep: Deployment, sockets: int, chats: int) -> list[Device]:
    """Users of two devices, each user in two chats (both devices subscribed to both); the
    first device marks the first chat, the second the second. An even user's devices are
    on different daemons, an odd user's on the same one."""
    users = sockets // 2
    mine = [(u % chats, (u % chats + 1 + u // chats) % chats) for u in range(users)]
    accounts, uris = crowd(dep.db, users, chats,
                           [(c, u) for u, pair in enumerate(mine) for c in pair],
                           last_seq=LAST_SEQ)
    daemons = dep.daemons
    devices = []
    for u, (a, b) in enumerate(mine):
        for k, marks in enumerate((a, b)):
            daemon = (k + u // 2) % len(daemons) if u % 2 == 0 else (u // 2) % len(daemons)
            devices.append(Device(daemons[daemon].ws_url, accounts[u].token,
                                  accounts[u].user_id, (uris[a], uris[b]), uris[marks]))
    return devices


def read(setup: str, sockets: int, chats: int, rate: float, duration: float, runs: int,
         workers: int) -> Result:
    """Every device sends `read` frames at ``rate`` a second (its seq one up each time) to
    its chat; its user's other device must get a `read` of that seq or a later one: the
    time from the send to that arrival, per mark. Store transactions and control events
    (broker messages) counted from /metrics."""
    result = Result("read", setup, {"sockets": sockets, "chats": chats, "rate": rate,
                                    "duration": duration, "runs": runs})
    with deployment(setup, metrics=True) as dep:
        devices = _read_layout(dep, sockets, chats)
        gen = Crowd(devices, workers, record=False)
        try:
            opened = gen.open(list(range(len(devices))))
            if opened["failed"]:
                raise RuntimeError(f"{opened['failed']} devices failed to open: "
                                   f"{opened['first_error']}")
            gen.reads(time.monotonic() + 0.2, 1.0, rate, 1.0)  # warm-up
            watch = Watch(dep)
            for run in range(runs):
                result.steps.append(_read_run(dep, gen, devices, rate, duration))
                st = result.steps[-1]
                log(f"  read {setup} run {run + 1}: {st['sent_per_s']:,.0f} read frames/s, "
                    f"other device p50 {st['latency']['p50']} p99 {st['latency']['p99']} "
                    f"max {st['latency']['max']} ms (same daemon p99 "
                    f"{st['same_daemon']['p99']}, across {st['across']['p99']}); lost "
                    f"{st['lost']}, backwards {st['backwards']}; store: {st['writes_per_s']} "
                    f"mark_read transactions/s ({st['marks_per_write']} marks each), "
                    f"{st['transactions_per_s']:,.0f} transactions/s in all; broker "
                    f"{st['broker_per_mark']} messages a mark; daemon CPU "
                    f"{st['us_per_mark']} us a mark")
            result.daemons = watch.figures()
        finally:
            gen.quit()
    steps = result.steps
    result.summary = {
        **{key: round(statistics.median(s[key] for s in steps), 2)
           for key in ("sent_per_s", "writes_per_s", "marks_per_write", "transactions_per_s",
                       "broker_per_mark", "us_per_mark")},
        "p50": round(statistics.median(s["latency"]["p50"] for s in steps), 1),
        "p99": round(statistics.median(s["latency"]["p99"] for s in steps), 1),
        "p99_spread": spread([s["latency"]["p99"] for s in steps]),
        "same_daemon_p99": round(statistics.median(s["same_daemon"]["p99"] for s in steps), 1),
        "across_p99": round(statistics.median(s["across"]["p99"] for s in steps), 1),
        "lost": sum(s["lost"] for s in steps), "backwards": sum(s["backwards"] for s in steps),
        "errors": sum(s["errors"] for s in steps),
    }
    return result


def _read_run(dep: Deployment, gen: Crowd, devices: list[Device], rate: float,
              duration: float) -> dict[str, Any]:
    queries0, published0, cpu0 = store_queries(dep), published(dep), daemon_cpu(dep)
    sent, arrivals, errors, _ = gen.reads(time.monotonic() + 0.3, duration, rate, DRAIN)
    cpu = daemon_cpu(dep) - cpu0
    messages = published(dep) - published0
    queries = {k: v - queries0.get(k, 0.0) for k, v in store_queries(dep).items()}
    # Each (chat, user) is marked by one device and watched by the other.
    marker = {(d.marks, d.user): i for i, d in enumerate(devices)}
    watcher = {(chat, d.user): i for i, d in enumerate(devices) for chat in d.chats
               if chat != d.marks}
    marks: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for chat, user, seq, at in sent:
        marks.setdefault((chat, user), []).append((seq, at))
    seen: dict[tuple[int, str], list[tuple[int, float]]] = {}
    for index, chat, seq, at in arrivals:
        seen.setdefault((index, chat), []).append((seq, at))
    same: list[float] = []
    across: list[float] = []
    lost = backwards = 0
    for (chat, user), mine in marks.items():
        index = watcher[(chat, user)]
        into = same if devices[index].url == devices[marker[(chat, user)]].url else across
        got = sorted(seen.get((index, chat), []), key=lambda a: a[1])
        backwards += sum(1 for x, y in pairwise(got) if y[0] < x[0])
        k = 0
        for seq, at in mine:
            while k < len(got) and got[k][0] < seq:
                k += 1
            if k == len(got):
                lost += 1
            else:
                into.append(max(0.0, got[k][1] - at))
    writes = queries.get("mark_read", 0.0)
    return {"sent": len(sent), "sent_per_s": round(len(sent) / duration),
            "latency": ms(same + across), "same_daemon": ms(same), "across": ms(across),
            "lost": lost, "backwards": backwards, "errors": errors,
            "writes_per_s": round(writes / duration, 1),
            "marks_per_write": round(len(sent) / writes, 1) if writes else 0.0,
            "transactions_per_s": round(sum(queries.values()) / duration),
            "queries": {k: int(v) for k, v in queries.items() if v},
            "broker_per_mark": round(messages / max(1, len(sent)), 3),
            "us_per_mark": round(cpu * 1e6 / max(1, len(sent)), 1)}
