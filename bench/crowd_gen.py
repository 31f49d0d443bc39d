"""The devices of a scenario spread over worker processes (bench.crowd_worker), driven together;
the daemons' counters the crowd scenarios read."""

from __future__ import annotations

import multiprocessing
import statistics
from multiprocessing.connection import Connection
from typing import Any

from bench.crowd_worker import Device, run
from bench.daemon import Deployment
from bench.generator import percentile


class Crowd:
    """Device i lives in worker i mod W; every command goes to the workers that hold any
    of the devices it names, and their replies are merged."""

    def __init__(self, devices: list[Device], workers: int, record: bool = True) -> None:
        self.workers = max(1, workers)
        self.devices = devices
        context = multiprocessing.get_context("fork")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for w in range(self.workers):
            mine, theirs = context.Pipe()
            share = {i: d for i, d in enumerate(devices) if i % self.workers == w}
            proc = context.Process(target=run, args=(share, theirs, record), daemon=True)
            proc.start()
            theirs.close()
            self.pipes.append(mine)
            self.procs.append(proc)
        for pipe in self.pipes:
            self._recv(pipe, 60)

    @staticmethod
    def _recv(pipe: Connection, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError("a crowd worker did not answer in time")
        return pipe.recv()

    def _all(self, command: tuple[Any, ...], timeout: float = 120) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return [self._recv(pipe, timeout) for pipe in self.pipes]

    def _split(self, name: str, indices: list[int], timeout: float) -> list[Any]:
        for w, pipe in enumerate(self.pipes):
            pipe.send((name, [i for i in indices if i % self.workers == w]))
        return [self._recv(pipe, timeout) for pipe in self.pipes]

    def open(self, indices: list[int]) -> dict[str, Any]:
        """Open these devices and subscribe each to its chats: opened, failed, first error,
        seconds (the slowest worker's)."""
        parts = self._split("open", indices, 1200)
        return {"opened": sum(p["opened"] for p in parts),
                "failed": sum(p["failed"] for p in parts),
                "first_error": next((p["first_error"] for p in parts if p["first_error"]), ""),
                "seconds": max(p["seconds"] for p in parts),
                "cpu": sum(p["cpu"] for p in parts)}

    def close(self, indices: list[int]) -> dict[int, float]:
        """Close these devices; when each close was sent (monotonic)."""
        closed: dict[int, float] = {}
        for part in self._split("close", indices, 60):
            closed.update(part["closed_at"])
        return closed

    def state(self) -> tuple[dict[int, dict[str, Any]], list[tuple[Any, ...]]]:
        """Every open device's view, and the presence frames since the last call."""
        devices: dict[int, dict[str, Any]] = {}
        frames: list[tuple[Any, ...]] = []
        for part in self._all(("state",)):
            devices.update(part["devices"])
            frames += part["frames"]
        return devices, frames

    def reads(self, start: float, duration: float, rate: float,
              drain: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int, float]:
        """(chat, user, seq, sent at) of every read frame sent, (device, chat, seq, arrived
        at) of every one received, frame errors, generator CPU seconds."""
        parts = self._all(("reads", start, duration, rate, drain), duration + drain + 60)
        return ([s for p in parts for s in p["sent"]], [a for p in parts for a in p["arrivals"]],
                sum(p["errors"] for p in parts), sum(p["cpu"] for p in parts))

    def open_count(self) -> int:
        return sum(p["open"] for p in self._all(("stats",)))

    def quit(self) -> None:
        """Close every socket, then end the worker processes (by their PIDs)."""
        for pipe in self.pipes:
            try:
                pipe.send(("quit",))
            except OSError:
                pass
        for pipe in self.pipes:
            try:
                self._recv(pipe, 30)
            except (OSError, EOFError, TimeoutError):
                pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def published(dep: Deployment) -> float:
    """Broker messages of control events the daemons published so far (a message carries
    the events that came while the one before it waited for its confirm)."""
    return float(sum(v for d in dep.daemons for k, v in d.samples().items()
                     if k.startswith("chatire_control_messages_total{")))


def store_queries(dep: Deployment) -> dict[str, float]:
    """Store transactions by name, summed over the daemons."""
    out: dict[str, float] = {}
    prefix = 'chatire_store_query_seconds_count{query="'
    for d in dep.daemons:
        for key, value in d.samples().items():
            if key.startswith(prefix):
                name = key[len(prefix):-2]
                out[name] = out.get(name, 0.0) + value
    return out


def ms(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of latencies in seconds, in milliseconds; and how many."""
    ordered = sorted(values)
    return {"p50": round(percentile(ordered, 0.5) * 1000, 1),
            "p99": round(percentile(ordered, 0.99) * 1000, 1),
            "max": round(ordered[-1] * 1000, 1) if ordered else 0.0, "count": len(ordered)}


def daemon_cpu(dep: Deployment) -> float:
    """CPU seconds of all the daemons so far."""
    return sum(d.cpu() for d in dep.daemons)


def spread(values: list[float]) -> list[float]:
    """min, median, max."""
    return [round(min(values), 1), round(statistics.median(values), 1),
            round(max(values), 1)] if values else []
