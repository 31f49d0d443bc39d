"""Issue #15's scenarios: presence (sockets coming and going in waves, every `presence` frame
checked), read marks between a user's two devices, and idle sockets holding several
subscriptions each with presence on."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.crowd import crowd
from bench.crowd_gen import Crowd, daemon_cpu, ms, published, spread
from bench.crowd_worker import Device
from bench.daemon import Deployment, deployment
from bench.scenarios import Result, Watch, end_profile, log, start_profile

#: Seconds the views may take to agree with the truth after a wave's frames are due.
SETTLE = 10.0


# -- presence ---------------------------------------------------------------------------------


#: What a device's view counts as it goes: frames that changed nothing, error frames.
_COUNTERS = ("duplicate", "wrong", "errors")


class _Truth:
    """Which devices are open, hence who is online in each chat (the grace run out)."""

    def __init__(self, devices: Sequence[Device]) -> None:
        self.devices = devices
        self.open: set[int] = set()
        self._counted: dict[tuple[int, str], int] = {}  # a view's counters at the last check

    def closed(self, indices: list[int]) -> None:
        self.open.difference_update(indices)
        for i in indices:
            for key in _COUNTERS:
                self._counted.pop((i, key), None)

    def _new(self, views: dict[int, dict[str, Any]], key: str) -> int:
        """How much a counter of the views grew since the last check."""
        grew = 0
        for i, view in views.items():
            grew += view[key] - self._counted.get((i, key), 0)
            self._counted[(i, key)] = view[key]
        return grew

    def online(self, chat: str) -> set[int]:
        return {self.devices[i].user for i in self.open if chat in self.devices[i].chats}

    def agrees(self, views: dict[int, dict[str, Any]]) -> bool:
        """Whether every open device's view is the truth (nothing counted)."""
        by_chat: dict[str, set[int]] = {}
        for i in self.open:
            for chat in self.devices[i].chats:
                by_chat.setdefault(chat, set()).add(self.devices[i].user)
        return all(i in views and all(set(views[i]["online"].get(chat, ())) == by_chat[chat]
                                      for chat in self.devices[i].chats) for i in self.open)

    def check(self, views: dict[int, dict[str, Any]]) -> dict[str, int]:
        """Every open device's view against the truth: devices that differ, users missing
        from views, users too many in them; the frames that changed nothing so far."""
        by_chat: dict[str, set[int]] = {}
        for i in self.open:
            for chat in self.devices[i].chats:
                by_chat.setdefault(chat, set()).add(self.devices[i].user)
        differ = missing = extra = 0
        for i in self.open:
            view = views.get(i)
            if view is None:
                differ += 1
                continue
            for chat in self.devices[i].chats:
                seen, truth = set(view["online"].get(chat, ())), by_chat.get(chat, set())
                if seen != truth:
                    differ += 1
                    missing += len(truth - seen)
                    extra += len(seen - truth)
        return {"views_checked": len(self.open), "views_differ": differ, "missing": missing,
                "extra": extra,
                **{key: self._new(views, key) for key in _COUNTERS},
                "closed": sum(v["closed"] for v in views.values())}


def _presence_layout(dep: Deployment, sockets: int, chats: int) -> list[Device]:
    """Socket i: chat i mod C, slot s = i div C; its user is one of ten per slot, so each
    (chat, user) pair is one socket; a chat's slots alternate between the daemons."""
    per_chat = sockets // chats
    users = 10 * per_chat
    pairs = [(i % chats, (i % chats % 10) * per_chat + i // chats) for i in range(sockets)]
    accounts, uris = crowd(dep.db, users, chats, pairs)
    daemons = dep.daemons
    return [Device(daemons[(i // chats) % len(daemons)].ws_url, accounts[u].token,
                   accounts[u].user_id, (uris[c],)) for i, (c, u) in enumerate(pairs)]


def presence(setup: str, sockets: int, chats: int, wave: int, cycles: int, grace: float,
             workers: int) -> Result:
    """``sockets`` sockets, one a (chat, user), open in waves of ``wave`` (each waits for its
    `subscribed` replies), are held, then close wave by wave, each close followed by the
    grace and a second; ``cycles`` times. Every open socket's view of who is online (its
    `subscribed` list, then each `presence` frame) is checked against the truth after the
    opens and after each close; frames timed; broker messages and daemon CPU per change."""
    result = Result("presence", setup, {"sockets": sockets, "chats": chats, "wave": wave,
                                        "cycles": cycles, "grace": grace})
    options = ("--presence-grace", str(grace))
    with deployment(setup, options=options, metrics=True) as dep:
        devices = _presence_layout(dep, sockets, chats)
        waves = [list(range(w, min(w + wave, sockets))) for w in range(0, sockets, wave)]
        gen = Crowd(devices, workers)
        truth = _Truth(devices)
        watch = Watch(dep)
        published0 = published(dep)
        try:
            for cycle in range(cycles):
                result.steps += _presence_cycle(dep, gen, truth, waves, grace, cycle)
            messages = published(dep) - published0
            result.daemons = watch.figures()
        finally:
            gen.quit()
    steps = result.steps
    ins = [s for s in steps if s["phase"] == "online"]
    outs = [s for s in steps if s["phase"] == "offline"]
    # The latencies of the waves that had someone to tell (the last close has nobody).
    told_in = [s for s in ins if s["latency"]["count"]] or ins
    told_out = [s for s in outs if s["latency"]["count"]] or outs
    changes = sum(s["changes"] for s in steps)
    checks = [s["check"] for s in steps]
    result.summary = {
        "changes": changes, "frames": sum(s["frames"] for s in steps),
        "broker_messages": int(messages),
        "broker_per_change": round(messages / max(1, changes), 3),
        "online_p99_ms": round(statistics.median(s["latency"]["p99"] for s in told_in), 1),
        "offline_p99_ms": round(statistics.median(s["latency"]["p99"] for s in told_out), 1),
        "online_p99_spread": spread([s["latency"]["p99"] for s in told_in]),
        "offline_p99_spread": spread([s["latency"]["p99"] for s in told_out]),
        "us_per_change": round(statistics.median(s["us_per_change"] for s in outs), 1),
        "us_per_change_spread": spread([s["us_per_change"] for s in outs]),
        "us_per_join": round(statistics.median(s["us_per_change"] for s in ins), 1),
        "open_per_s": round(statistics.median(s["open_per_s"] for s in ins)),
        **{key: sum(c[key] for c in checks) for key in
           ("views_differ", "missing", "extra", "duplicate", "wrong", "errors", "closed")},
        "failed": sum(s.get("failed", 0) for s in ins),
        "views_checked": sum(c["views_checked"] for c in checks),
    }
    s = result.summary
    s["correct"] = not any(s[k] for k in ("views_differ", "missing", "extra", "duplicate",
                                          "wrong", "errors", "closed", "failed"))
    log(f"  presence {setup}: {changes:,} changes, {s['frames']:,} frames, "
        f"{'all correct' if s['correct'] else 'NOT CORRECT'} ({s['views_checked']:,} views "
        f"checked: differ {s['views_differ']}, dup {s['duplicate']}, wrong {s['wrong']}); "
        f"online p99 {s['online_p99_ms']} ms {s['online_p99_spread']}, offline p99 "
        f"{s['offline_p99_ms']} ms past the grace {s['offline_p99_spread']}; broker "
        f"{s['broker_per_change']} messages a change; daemon CPU {s['us_per_change']} us an "
        f"offline change {s['us_per_change_spread']}, {s['us_per_join']} us a joining socket")
    return result


def _presence_cycle(dep: Deployment, gen: Crowd, truth: _Truth, waves: list[list[int]],
                    grace: float, cycle: int) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    devices = truth.devices
    pending: list[tuple[dict[str, Any], list[int]]] = []
    for number, indices in enumerate(waves):
        sent0 = published(dep)
        cpu0 = daemon_cpu(dep)
        opened = gen.open(indices)
        cpu = daemon_cpu(dep) - cpu0
        messages = published(dep) - sent0  # (a late event of the wave counts in the next)
        truth.open.update(indices)
        step = {"cycle": cycle, "wave": number, "phase": "online", "changes": len(indices),
                "broker_per_change": round(messages / max(1, len(indices)), 3),
                "failed": opened["failed"], "first_error": opened["first_error"],
                "open_per_s": round(opened["opened"] / max(opened["seconds"], 1e-9)),
                # connect, authenticate, subscribe and the change: CPU of a joining socket
                "us_per_change": round(cpu * 1e6 / max(1, len(indices)), 1)}
        steps.append(step)
        pending.append((step, indices))
    time.sleep(1.0)  # online frames are due within a second
    views, frames = _settled(gen, truth)
    check = truth.check(views)
    # An online frame's latency: from its socket's subscribe (the pair is one socket).
    sub_sent = {(devices[i].chats[0], devices[i].user): v["sub_sent"] for i, v in views.items()}
    for step, wave in pending:
        pairs = {(devices[i].chats[0], devices[i].user) for i in wave}
        late = [t - sub_sent[(chat, user)] for _, chat, user, online, t in frames
                if online and (chat, user) in pairs and (chat, user) in sub_sent]
        step["latency"] = ms(late)
        step["frames"] = len(late)
        step["check"] = check if step is pending[-1][0] else _no_check()
    stray = [f for f in frames if not f[3]]
    if stray:
        check["wrong"] += len(stray)  # nobody left during the opens
    # Idle: what the daemons use holding the sockets (snapshots, sweeps, pings).
    cpu0, at = daemon_cpu(dep), time.monotonic()
    time.sleep(2.0)
    idle = (daemon_cpu(dep) - cpu0) / (time.monotonic() - at)
    for number, indices in enumerate(waves):
        sent0 = published(dep)
        closed = gen.close(indices)
        truth.closed(indices)
        last = max(closed.values())
        # The closes themselves are done within the first second; the grace ends for
        # each at its close + grace: the CPU between is the offline changes'.
        time.sleep(max(0.0, last + 1.0 - time.monotonic()))
        cpu0, at = daemon_cpu(dep), time.monotonic()
        spies = (start_profile(dep, grace, f"offline{number}")
                 if cycle == 0 and number < len(waves) - 1 else [])
        time.sleep(max(0.0, last + grace + 1.0 - time.monotonic()))
        busy = daemon_cpu(dep) - cpu0 - idle * (time.monotonic() - at)
        messages = published(dep) - sent0
        end_profile(spies)
        views, frames = _settled(gen, truth)
        left = {(devices[i].chats[0], devices[i].user): closed[i] for i in indices
                if i in closed}
        late = [t - left[(chat, user)] - grace for _, chat, user, online, t in frames
                if not online and (chat, user) in left]
        check = truth.check(views)
        check["wrong"] += sum(1 for f in frames if f[3])  # nobody came during the closes
        steps.append({"cycle": cycle, "wave": number, "phase": "offline",
                      "changes": len(indices), "frames": len(late), "latency": ms(late),
                      "broker_per_change": round(messages / max(1, len(indices)), 3),
                      "us_per_change": round(max(0.0, busy) * 1e6 / max(1, len(indices)), 1),
                      "check": check})
    return steps


def _settled(gen: Crowd, truth: _Truth, timeout: float = SETTLE
             ) -> tuple[dict[int, dict[str, Any]], list[tuple[Any, ...]]]:
    """The views and frames once every open view agrees with the truth (a loaded machine
    delivers late; lateness is in the latencies), or at the timeout."""
    deadline = time.monotonic() + timeout
    frames: list[tuple[Any, ...]] = []
    while True:
        views, more = gen.state()
        frames += more
        if time.monotonic() >= deadline or truth.agrees(views):
            return views, frames
        time.sleep(0.25)


def _no_check() -> dict[str, int]:
    return {"views_checked": 0, "views_differ": 0, "missing": 0, "extra": 0, "duplicate": 0,
            "wrong": 0, "errors": 0, "closed": 0}
