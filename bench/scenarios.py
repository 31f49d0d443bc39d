"""The scenarios: fanout, max, idle, ingest and timeline, each on a fresh deployment, bounded."""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import bulk
from bench.cores import Pinning, pin
from bench.daemon import Deployment, count_messages, deployment, reset_hwm
from bench.generator import Generator, Step
from bench.setup import Account, populate_sync
from bench.timeline import PAGE_LIMIT, resume, time_pages
from bench.worker import Receiver, Sender, raise_fd_limit

#: Users whose sockets share the subscriptions (one user may hold many sockets).
USERS = 10


def log(text: str) -> None:
    """One progress line on stdout, flushed (benchmarks run for minutes)."""
    print(text, flush=True)


@dataclass
class DaemonFigures:
    """CPU and memory of one daemon over a measurement."""

    cpu_percent: float
    rss_before_kib: int
    rss_peak_kib: int
    rss_after_kib: int


@dataclass
class Result:
    """One scenario run on one set-up: parameters, steps, daemon figures, verdict."""

    scenario: str
    setup: str
    params: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    daemons: list[DaemonFigures] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class Watch:
    """Daemon CPU and RSS (before, peak, after) over a stretch of time."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.started = time.monotonic()
        self.cpu0 = [d.cpu() for d in dep.daemons]
        self.rss0 = [d.rss_kib() for d in dep.daemons]
        for d in dep.daemons:
            reset_hwm(d.pid)

    def cpu_percent(self) -> list[float]:
        wall = time.monotonic() - self.started
        return [100 * (d.cpu() - c) / wall for d, c in zip(self.dep.daemons, self.cpu0,
                                                            strict=True)]

    def figures(self) -> list[DaemonFigures]:
        from bench.daemon import proc_hwm_kib

        return [DaemonFigures(round(cpu, 1), before, proc_hwm_kib(d.pid), d.rss_kib())
                for d, cpu, before in zip(self.dep.daemons, self.cpu_percent(), self.rss0,
                                          strict=True)]


def start_profile(dep: Deployment, seconds: float,
                  tag: str = "") -> list[subprocess.Popen[bytes]]:
    """With BENCH_PROFILE=PREFIX, py-spy records each daemon (collapsed stacks) for a while,
    to PREFIX[-TAG]-N.txt."""
    prefix = os.environ.get("BENCH_PROFILE")
    if not prefix:
        return []
    spy = str(Path(sys.executable).with_name("py-spy"))
    native = ["--native"] if os.environ.get("BENCH_PROFILE_NATIVE") else []  # the collector
    return [subprocess.Popen([spy, "record", "--pid", str(d.pid), "--duration",
                              str(round(seconds)), "--rate", "250", "--nonblocking",
                              "--format", "raw", *native,
                              "--output", f"{prefix}{'-' + tag if tag else ''}-{i}.txt"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i, d in enumerate(dep.daemons)]


def end_profile(spies: list[subprocess.Popen[bytes]]) -> None:
    """Wait for the py-spy children (they stop by themselves after their duration)."""
    for spy in spies:
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def _populate(dep: Deployment, chats: int, users: int = USERS) -> tuple[list[Account], list[str]]:
    return populate_sync(dep.daemons[0].base_url, users, chats)


def _step_row(step: Step, daemon_cpu: list[float]) -> dict[str, Any]:
    row = asdict(step)
    row["clean"] = step.clean
    row["daemon_cpu_percent"] = [round(c, 1) for c in daemon_cpu]
    row["generator_cpu_percent"] = round(100 * step.generator_cpu / max(step.elapsed, 1e-9), 1)
    # Daemon CPU per delivery: steadier than a rate on a shared machine.
    row["daemon_us_per_delivery"] = round(
        sum(daemon_cpu) / 100 * 1e6 / step.rate, 2) if step.rate else 0.0
    return row


def _fanout_clients(dep: Deployment, accounts: list[Account], uris: list[str],
                    subscribers: int, msg_rate: float) -> tuple[list[Receiver], list[Sender]]:
    """S receivers per chat and one sender per chat, alternating over the daemons."""
    daemons = dep.daemons
    receivers = []
    for c, uri in enumerate(uris):
        for s in range(subscribers):
            account = accounts[(c + s) % len(accounts)]
            daemon = daemons[(c * subscribers + s) % len(daemons)]
            receivers.append(Receiver(daemon.ws_url, account.token, uri))
    per_chat = msg_rate / len(uris)
    senders = [Sender(daemons[(c + 1) % len(daemons)].ws_url, accounts[c % len(accounts)].token,
                      uri, per_chat) for c, uri in enumerate(uris)]
    return receivers, senders


def fanout(setup: str, rooms: int, subscribers: int, rate: float, duration: float,
           runs: int, workers: int) -> Result:
    """R chats x S subscribers, messages at ``rate`` deliveries a second, ``runs`` steps."""
    result = Result("fanout", setup, {"rooms": rooms, "subscribers": subscribers,
                                      "rate": rate, "duration": duration, "runs": runs})
    with deployment(setup) as dep:
        accounts, uris = _populate(dep, rooms)
        msg_rate = rate / subscribers
        receivers, senders = _fanout_clients(dep, accounts, uris, subscribers, msg_rate)
        gen = Generator(receivers, senders, workers)
        try:
            _check_open(gen, len(receivers))
            gen.step(1.0, scale=0.2, target=rate * 0.2)  # warm-up: bindings, caches
            watch = Watch(dep)
            spies = start_profile(dep, duration)
            for run in range(runs):
                step_watch = Watch(dep)
                step = gen.step(duration, target=rate)
                end_profile(spies)
                spies = []
                row = _step_row(step, step_watch.cpu_percent())
                result.steps.append(row)
                log(f"  fanout {setup} {rooms}x{subscribers} @{rate:,.0f}/s run {run + 1}: "
                    + _describe(step, row))
            time.sleep(1.0)
            result.daemons = watch.figures()
        finally:
            gen.close()
    result.summary = _medians(result.steps)
    return result


def max_rate(setup: str, rooms: int, subscribers: int, start_rate: float, duration: float,
             workers: int, p99_limit: float = 250.0, max_steps: int = 10,
             factor: float = 1.3, pinning: Pinning | None = None,
             searches: int = 3) -> Result:
    """Raise the rate step by step until p99 passes the limit or anything is lost.

    The search runs ``searches`` times on the same daemons (the result is their median,
    their spread the noise): the first from ``start_rate``, the others from two steps
    below what the first sustained, on the same grid of rates.

    ``pinning``: the daemons and the generator confined to CPUs of their own (taskset)."""
    params: dict[str, Any] = {"rooms": rooms, "subscribers": subscribers,
                              "start_rate": start_rate, "duration": duration,
                              "p99_limit_ms": p99_limit, "factor": factor,
                              "searches": searches}
    if pinning is not None:
        params["pinning"] = pinning.describe()
    result = Result("max", setup, params)
    bests: list[float] = []
    with deployment(setup) as dep:
        accounts, uris = _populate(dep, rooms)
        receivers, senders = _fanout_clients(dep, accounts, uris, subscribers,
                                             start_rate / subscribers)
        gen = Generator(receivers, senders, workers)
        try:
            _check_open(gen, len(receivers))
            if pinning is not None:
                pin((d.pid for d in dep.daemons), pinning.daemon)
                pin((p.pid for p in gen.procs), pinning.generator)
            gen.step(1.0, scale=0.2, target=start_rate * 0.2)
            watch = Watch(dep)
            first_scale = 1.0
            for search in range(max(1, searches)):
                best, best_scale = _search(
                    result, gen, dep, setup, rooms, subscribers, start_rate, duration,
                    p99_limit, first_scale, factor, max_steps, search)
                bests.append(best)
                if search == 0 and best:
                    first_scale = max(1.0, best_scale / factor ** 2)
            result.daemons = watch.figures()
        finally:
            gen.close()
    result.summary = {"max_rate": round(statistics.median(bests)),
                      "max_rates": [round(b) for b in bests]}
    return result


def _search(result: Result, gen: Generator, dep: Deployment, setup: str, rooms: int,
            subscribers: int, start_rate: float, duration: float, p99_limit: float,
            scale: float, factor: float, max_steps: int, search: int) -> tuple[float, float]:
    """One search from ``scale``: the best rate a passing step delivered, and its scale."""
    best, best_scale = 0.0, 0.0
    retried = False
    for _ in range(max_steps):
        step_watch = Watch(dep)
        step = gen.step(duration, scale=scale, target=start_rate * scale)
        row = _step_row(step, step_watch.cpu_percent())
        row["search"] = search
        result.steps.append(row)
        # Sustained: nothing lost, p99 within the limit, and the load was really
        # offered (90 % of the messages the rate asks for, less one a sender for
        # the pacing's rounding down).
        wanted = step.target / subscribers * duration
        ok = (step.clean and step.p99 <= p99_limit
              and step.committed >= 0.9 * wanted - rooms)
        log(f"  max {setup} {rooms}x{subscribers} search {search + 1} @{step.target:,.0f}/s: "
            + _describe(step, row) + ("" if ok else "  <- limit"))
        if not ok:
            if retried:
                break
            # The machine is shared: a step fails only if it fails twice.
            retried = True
            row["retried"] = True
            continue
        retried = False
        if step.rate > best:
            best, best_scale = step.rate, scale
        scale *= factor
    return best, best_scale


def idle(setup: str, connections: int, rooms: int, workers: int, cycles: int = 3) -> Result:
    """Hold ``connections`` subscribed sockets: RSS per connection, connection set-up rate.

    Done ``cycles`` times on the same daemons: RSS after each close shows whether
    closed connections leave anything behind, and each cycle's RSS held over the RSS
    before the first is a run of the KiB-per-connection figure (their median).
    """
    result = Result("idle", setup, {"connections": connections, "rooms": rooms,
                                    "cycles": cycles})
    workers = max(workers, -(-connections // 4000))
    after_close: list[list[int]] = []
    held_each: list[list[int]] = []
    with deployment(setup) as dep:
        accounts, uris = _populate(dep, rooms, users=20)
        daemons = dep.daemons
        receivers = [Receiver(daemons[i % len(daemons)].ws_url,
                              accounts[i % len(accounts)].token, uris[i % len(uris)])
                     for i in range(connections)]
        time.sleep(0.5)
        watch = Watch(dep)
        for cycle in range(max(1, cycles)):
            started = time.monotonic()
            gen = Generator(receivers, [], workers)
            try:
                opened = gen.receivers
                seconds = time.monotonic() - started
                time.sleep(2.0)
                held_each.append([d.rss_kib() for d in daemons])
                if cycle == 0:
                    held = held_each[0]
                    open_now = gen.open_count()
                    step = gen.step(2.0, target=0.0)  # are they all still there?
                    first = (opened, seconds, gen.connect_failures, gen.first_error)
            finally:
                gen.close()
            time.sleep(3.0)
            after_close.append([d.rss_kib() for d in daemons])
        result.daemons = watch.figures()
    opened, seconds, failed, first_error = first
    per_daemon = max(1, opened // len(daemons))
    per_cycle = [max((h - f.rss_before_kib) / per_daemon
                     for h, f in zip(cycle_held, result.daemons, strict=True))
                 for cycle_held in held_each]
    result.summary = {
        "opened": opened, "failed": failed, "first_error": first_error,
        "open_after_2s": open_now, "closed_during": step.closed,
        "setup_per_s": round(opened / seconds), "setup_seconds": round(seconds, 2),
        "rss_held_kib": held, "kib_per_connection": round(statistics.median(per_cycle), 2),
        "kib_per_connection_runs": [round(k, 2) for k in per_cycle],
        "rss_held_each_cycle_kib": held_each, "rss_after_each_close_kib": after_close,
    }
    log(f"  idle {setup} {connections}: opened {opened} ({failed} failed) in "
        f"{seconds:.1f} s = {opened / seconds:,.0f}/s; RSS "
        f"{[f.rss_before_kib for f in result.daemons]} -> {held} KiB held -> "
        f"{after_close} KiB after each of {cycles} close(s); "
        f"{result.summary['kib_per_connection']} KiB/conn (cycles "
        f"{result.summary['kib_per_connection_runs']})"
        + (f"; first error {first_error}" if first_error else ""))
    return result


def ingest(setup: str, rooms: int, senders_per_room: int, window: int, duration: float,
           runs: int, workers: int) -> Result:
    """Closed-loop senders on the socket path: messages committed a second, checked in the DB."""
    result = Result("ingest", setup, {"rooms": rooms, "senders_per_room": senders_per_room,
                                      "window": window, "duration": duration, "runs": runs})
    with deployment(setup) as dep:
        accounts, uris = _populate(dep, rooms)
        daemons = dep.daemons
        senders = [Sender(daemons[(c + k) % len(daemons)].ws_url,
                          accounts[(c + k) % len(accounts)].token, uri, 0.0, window)
                   for c, uri in enumerate(uris) for k in range(senders_per_room)]
        gen = Generator([], senders, workers)
        try:
            gen.step(1.0, target=0.0)  # warm-up
            watch = Watch(dep)
            spies = start_profile(dep, duration)
            for run in range(runs):
                before, txns_before = _stored(dep)
                step_watch = Watch(dep)
                step = gen.step(duration, target=0.0)
                stored, txns = _stored(dep)
                stored -= before
                txns -= txns_before
                end_profile(spies)
                spies = []
                row = _step_row(step, step_watch.cpu_percent())
                row["stored"] = stored
                row["stored_matches"] = stored == step.committed
                row["per_transaction"] = round(stored / txns, 2) if txns else 0.0
                result.steps.append(row)
                log(f"  ingest {setup} {rooms} chats x {senders_per_room} senders "
                    f"(window {window}) run {run + 1}: {step.commit_rate:,.0f} msg/s committed, "
                    f"{stored} stored ({'matches' if stored == step.committed else 'MISMATCH'}), "
                    f"{row['per_transaction']} a transaction, "
                    f"errors {step.send_errors}, unanswered {step.unanswered}, "
                    f"rtt p50 {step.rtt_p50:.1f} ms p99 {step.rtt_p99:.1f} ms, "
                    f"daemon CPU {row['daemon_cpu_percent']} %, "
                    f"generator CPU {row['generator_cpu_percent']} %")
            result.daemons = watch.figures()
        finally:
            gen.close()
    result.summary = _medians(result.steps, keys=("commit_rate", "rtt_p50", "rtt_p99",
                                                  "per_transaction"))
    result.summary["all_stored"] = all(r["stored_matches"] for r in result.steps)
    return result


#: The timeline scenario runs the daemon with its own default slow-reader limit (the
#: other scenarios allow 16 MiB): a resume that outran its reader by more would end
#: with 4008, so a clean resume shows the socket's backlog stayed under it.
TIMELINE_SLOW_READER = 1024 * 1024


def timeline(setup: str, events: int, repeats: int, runs: int = 1) -> Result:
    """One chat with ``events`` mixed entries, loaded in bulk: `events` pages timed at its
    start, middle and end, then ``runs`` resumes from seq 0 on one socket (time, order,
    the daemon's RSS before/peak/after)."""
    result = Result("timeline", setup, {"events": events, "page_limit": PAGE_LIMIT,
                                        "repeats": repeats, "runs": runs,
                                        "slow_reader_bytes": TIMELINE_SLOW_READER})
    options = ("--slow-reader-bytes", str(TIMELINE_SLOW_READER))
    with deployment(setup, options=options) as dep:
        accounts, uris = _populate(dep, 1)
        reader, uri = accounts[0], uris[0]
        loaded = bulk.load(dep.db, uri, events)
        sizes = bulk.sizes(dep.db, loaded.chat_id)
        log(f"  timeline {setup}: {events:,} entries {loaded.kinds}, {loaded.reactions:,} "
            f"reactions standing; built in {loaded.build_seconds} s, written in "
            f"{loaded.write_seconds} s; rows {sizes['rows_kib']:,} KiB, tables with indexes "
            f"{sizes['tables_kib']:,} KiB")
        daemon = dep.daemons[0]
        time.sleep(0.5)
        watch = Watch(dep)
        pages = time_pages(daemon.base_url, reader.token, uri, events, repeats)
        page_rss = watch.figures()[0]
        log(f"  timeline {setup} pages of {PAGE_LIMIT}: " + "; ".join(
            f"{name} (after {p['after']:,}) p50 {p['p50']:.1f} p99 {p['p99']:.1f} ms, "
            f"{p['kib']:,.0f} KiB" for name, p in pages.items())
            + f"; RSS {page_rss.rss_before_kib:,}/{page_rss.rss_peak_kib:,}/"
              f"{page_rss.rss_after_kib:,} KiB")
        for run in range(runs):
            time.sleep(1.0)
            watch = Watch(dep)
            cpu = daemon.cpu()
            replay = resume(daemon.ws_url, reader.token, uri, daemon.pid)
            cpu = daemon.cpu() - cpu
            time.sleep(1.0)
            rss = watch.figures()[0]
            row = asdict(replay)
            row["frames_per_s"] = round(replay.received / replay.last_s) if replay.last_s else 0
            row["daemon_us_per_frame"] = round(cpu * 1e6 / max(1, replay.received), 1)
            row["rss"] = asdict(rss)
            row["peak_growth_kib"] = rss.rss_peak_kib - rss.rss_before_kib
            row["sampled_growth_kib"] = replay.rss_sampled_peak_kib - rss.rss_before_kib
            result.steps.append(row)
            result.daemons.append(rss)
            log(f"  timeline {setup} resume {run + 1}: {replay.received:,} of "
                f"{replay.last_seq:,} seqs in {replay.last_s:.2f} s (first after "
                f"{replay.first_s * 1000:.0f} ms) = {row['frames_per_s']:,} frames/s, "
                f"{replay.frame_bytes / 1024 / 1024:.1f} MiB of frames; lost {replay.lost} "
                f"dup {replay.duplicates} ooo {replay.out_of_order} errors {replay.errors} "
                f"close {replay.close_code}; daemon RSS {rss.rss_before_kib:,} -> peak "
                f"{rss.rss_peak_kib:,} (+{row['peak_growth_kib']:,}; sampled "
                f"+{row['sampled_growth_kib']:,}) -> {rss.rss_after_kib:,} KiB, "
                f"daemon CPU {row['daemon_us_per_frame']} us/frame")
    steps = result.steps
    result.summary = {
        "kinds": loaded.kinds, "load_seconds": round(loaded.build_seconds
                                                     + loaded.write_seconds, 1),
        **sizes, "pages": pages, "pages_rss_kib": asdict(page_rss),
        "frame_kib": steps[0]["frame_bytes"] // 1024,
        "resume_s": round(statistics.median(s["last_s"] for s in steps), 2),
        "first_ms": round(statistics.median(s["first_s"] for s in steps) * 1000),
        "frames_per_s": round(statistics.median(s["frames_per_s"] for s in steps)),
        "daemon_us_per_frame": statistics.median(s["daemon_us_per_frame"] for s in steps),
        "peak_growth_kib": max(s["peak_growth_kib"] for s in steps),
        "sampled_growth_kib": max(s["sampled_growth_kib"] for s in steps),
        **{key: sum(s[key] for s in steps)
           for key in ("lost", "duplicates", "out_of_order", "errors")},
        "closed": sum(s["close_code"] is not None for s in steps),
    }
    return result


def _stored(dep: Deployment) -> tuple[int, int]:
    """Messages in the store, and the append transactions that stored them."""
    if dep.db.startswith("sqlite:"):
        conn = sqlite3.connect(dep.db.removeprefix("sqlite:///"))
        try:
            row = conn.execute("SELECT count(*), count(DISTINCT created_at) "
                               "FROM messages").fetchone()
            return int(row[0]), int(row[1])
        finally:
            conn.close()
    return count_messages(dep.db.split("?")[0])


def _check_open(gen: Generator, wanted: int) -> None:
    if gen.receivers < wanted:
        raise RuntimeError(f"only {gen.receivers} of {wanted} sockets subscribed: "
                           f"{gen.first_error}")


def _describe(step: Step, row: dict[str, Any]) -> str:
    return (f"{step.rate:,.0f} deliveries/s, p50 {step.p50:.1f} p90 {step.p90:.1f} "
            f"p99 {step.p99:.1f} max {step.max:.1f} ms, lost {step.lost} dup "
            f"{step.duplicates} ooo {step.out_of_order} unanswered {step.unanswered} "
            f"closed {step.closed}; send->sent p50 {step.rtt_p50:.1f} p99 {step.rtt_p99:.1f} ms; "
            f"daemon CPU {row['daemon_cpu_percent']} % "
            f"({row['daemon_us_per_delivery']} us/delivery), "
            f"generator CPU {row['generator_cpu_percent']} %")


def _medians(steps: list[dict[str, Any]],
             keys: tuple[str, ...] = ("rate", "p50", "p90", "p99", "max",
                                      "daemon_us_per_delivery")) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in steps]
        summary[key] = round(statistics.median(values), 2) if values else 0.0
    for key in ("lost", "duplicates", "out_of_order", "unanswered", "send_errors", "closed"):
        summary[key] = sum(s[key] for s in steps)
    summary["daemon_cpu_percent"] = [
        round(statistics.median(cpu), 1) for cpu in zip(*(s["daemon_cpu_percent"]
                                                        for s in steps), strict=True)
    ] if steps else []
    summary["generator_cpu_percent"] = round(statistics.median(
        s["generator_cpu_percent"] for s in steps), 1) if steps else 0.0
    return summary


def prepare() -> None:
    """Raise this process's own open-file limit (the workers raise theirs too)."""
    raise_fd_limit()
