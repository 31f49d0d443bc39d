"""The subscriptions scenario (issue #15): idle sockets of several subscriptions each, every
socket its own user, presence on: RSS per socket and per subscription, set-up rate, leaks."""

from __future__ import annotations

import time
from typing import Any

from bench.crowd import crowd
from bench.crowd_gen import Crowd, published
from bench.crowd_worker import Device
from bench.daemon import Deployment, deployment
from bench.scenarios import DaemonFigures, Result, Watch, log

#: Sockets one generator process holds at most (its own open-file limit).
PER_WORKER = 4000


def subscriptions(setup: str, sockets: int, chats: int, per_socket: int,
                  workers: int, runs: int = 3) -> Result:
    """``sockets`` sockets, socket i of user i subscribed to chats 5i .. 5i + 4 (mod
    ``chats``), opened (each waits for all its `subscribed` replies; every newcomer is a
    presence change its chats' earlier subscribers are told of), held, closed; ``runs``
    times, each on fresh daemons and a fresh store (a second fill of the same daemon holds
    what the allocator kept from the first: that is the leak check's question, not this
    figure's). KiB a socket: RSS held over the RSS before, per socket; the figure is the
    median run's."""
    result = Result("subs", setup, {"sockets": sockets, "chats": chats,
                                    "per_socket": per_socket, "runs": runs})
    workers = max(workers, -(-sockets // PER_WORKER))
    done: list[tuple[dict[str, Any], list[DaemonFigures]]] = []
    for number in range(max(1, runs)):
        with deployment(setup, metrics=True) as dep:
            mine = [tuple((i * per_socket + k) % chats for k in range(per_socket))
                    for i in range(sockets)]
            accounts, uris = crowd(dep.db, sockets, chats,
                                   [(c, i) for i, cs in enumerate(mine) for c in cs])
            daemons = dep.daemons
            devices = [Device(daemons[i % len(daemons)].ws_url, accounts[i].token,
                              accounts[i].user_id, tuple(uris[c] for c in cs))
                       for i, cs in enumerate(mine)]
            gen = Crowd(devices, workers, record=False)
            try:
                time.sleep(0.5)
                watch = Watch(dep)
                before = [d.rss_kib() for d in daemons]
                run = _fill(dep, gen, sockets, per_socket, before)
                done.append((run, watch.figures()))
            finally:
                gen.quit()
        log(f"  subs {setup} run {number + 1}: {_line(run)}")
    ordered = sorted(range(len(done)), key=lambda i: done[i][0]["kib_per_socket"])
    median, result.daemons = done[ordered[len(ordered) // 2]]
    result.steps = [run for run, _ in done]
    result.summary = dict(median)
    result.summary["kib_per_socket_runs"] = [run["kib_per_socket"] for run in result.steps]
    for key in ("failed", "duplicate", "wrong", "errors"):
        result.summary[key] = sum(run[key] for run in result.steps)
    s = result.summary
    log(f"  subs {setup} {sockets} x {per_socket}, the median of {len(done)} runs "
        f"{s['kib_per_socket_runs']} KiB a socket: {_line(s)}; RSS "
        f"{[f.rss_before_kib for f in result.daemons]} before")
    return result


def _fill(dep: Deployment, gen: Crowd, sockets: int, per_socket: int,
           before: list[int]) -> dict[str, Any]:
    """Open every socket, hold, measure, close them all."""
    daemons = dep.daemons
    published0 = published(dep)
    opened = gen.open(list(range(sockets)))
    time.sleep(2.0)
    held = [d.rss_kib() for d in daemons]
    views, _ = gen.state()
    open_now = gen.open_count()
    messages = published(dep) - published0
    gen.close(list(range(sockets)))
    time.sleep(3.0)
    after = [d.rss_kib() for d in daemons]
    per_daemon = max(1, opened["opened"] // len(daemons))
    per_socket_kib = max((h - b) / per_daemon for h, b in zip(held, before, strict=True))
    return {
        "opened": opened["opened"], "failed": opened["failed"],
        "first_error": opened["first_error"], "open_after_2s": open_now,
        "subscriptions": opened["opened"] * per_socket,
        "setup_per_s": round(opened["opened"] / max(opened["seconds"], 1e-9)),
        "setup_seconds": round(opened["seconds"], 1), "rss_held_kib": held,
        "rss_after_close_kib": after, "kib_per_socket": round(per_socket_kib, 2),
        "kib_per_subscription": round(per_socket_kib / per_socket, 2),
        "frames": sum(v["frames"] for v in views.values()), "broker_messages": int(messages),
        "duplicate": sum(v["duplicate"] for v in views.values()),
        "wrong": sum(v["wrong"] for v in views.values()),
        "errors": sum(v["errors"] for v in views.values()),
    }


def _line(s: dict[str, Any]) -> str:
    return (f"opened {s['opened']:,} ({s['failed']} failed"
            f"{'; ' + s['first_error'] if s['first_error'] else ''}) in {s['setup_seconds']} s "
            f"= {s['setup_per_s']:,}/s; {s['frames']:,} frames received (presence), broker "
            f"{s['broker_messages']:,} messages; RSS held {s['rss_held_kib']} -> "
            f"{s['rss_after_close_kib']} KiB after the close; {s['kib_per_socket']} KiB a "
            f"socket, {s['kib_per_subscription']} KiB a subscription")
