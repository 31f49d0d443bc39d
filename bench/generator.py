"""The generator: worker processes that hold the sockets, stepped together from this process."""

from __future__ import annotations

import multiprocessing
import time
from array import array
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bench.worker import Job, Receiver, Sender, run


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


@dataclass
class Step:
    """The figures of one measured send step, summed over the workers."""

    target: float  # deliveries (fanout) or messages (ingest) a second asked for
    duration: float
    attempted: int
    committed: int
    unanswered: int
    send_errors: int
    received: int
    lost: int
    duplicates: int
    out_of_order: int
    frame_errors: int
    closed: int
    rate: float  # deliveries a second received
    commit_rate: float  # messages committed a second
    p50: float
    p90: float
    p99: float
    max: float
    rtt_p50: float
    rtt_p99: float
    generator_cpu: float  # CPU seconds of all workers during the step
    elapsed: float

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicates or self.out_of_order or self.unanswered
                    or self.send_errors or self.closed)


class Generator:
    """Worker processes holding receivers and senders, spread round-robin."""

    def __init__(self, receivers: list[Receiver], senders: list[Sender], workers: int,
                 message_chars: int = 100) -> None:
        workers = max(1, workers)
        jobs = [Job(i, receivers[i::workers], senders[i::workers], message_chars)
                for i in range(workers)]
        context = multiprocessing.get_context("fork")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for job in jobs:
            mine, theirs = context.Pipe()
            proc = context.Process(target=run, args=(job, theirs), daemon=True)
            proc.start()
            theirs.close()
            self.pipes.append(mine)
            self.procs.append(proc)
        started = time.monotonic()
        self.opened = [self._recv(pipe, 600) for pipe in self.pipes]
        self.open_seconds = time.monotonic() - started
        self.receivers = sum(o["receivers"] for o in self.opened)
        self.connect_failures = sum(o["connect_failures"] for o in self.opened)
        self.first_error = next((o["first_error"] for o in self.opened if o["first_error"]), "")

    @staticmethod
    def _recv(pipe: Connection, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError("a generator worker did not answer in time")
        return pipe.recv()

    def _all(self, command: tuple[Any, ...], timeout: float) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return [self._recv(pipe, timeout) for pipe in self.pipes]

    def step(self, duration: float, scale: float = 1.0, target: float = 0.0,
             drain_timeout: float = 15.0, mixed: float = 0.0) -> Step:
        """Send for ``duration`` seconds at ``scale`` times the senders' rates (``mixed``:
        that share of them edits, reactions and deletes); gather."""
        start = time.monotonic() + 0.3
        sent = self._all(("go", start, duration, scale, mixed), duration + 60)
        committed: dict[str, list[int]] = {}
        round_trips = array("d")
        for part in sent:
            for chat, seqs in part["committed"].items():
                committed.setdefault(chat, []).extend(seqs)
            round_trips.frombytes(part["round_trips"])
        last = {chat: max(seqs) for chat, seqs in committed.items() if seqs}
        got = self._all(("drain", last, drain_timeout), drain_timeout + 30)
        latencies = array("d")
        for part in got:
            latencies.frombytes(part["latencies"])
        ordered = sorted(latencies)
        rtts = sorted(round_trips)
        received = sum(p["received"] for p in got)
        last_at = max((p["last_at"] for p in got), default=0.0)
        window = max(duration, last_at - start) if last_at else duration
        commits = sum(len(seqs) for seqs in committed.values())
        return Step(
            target=target, duration=duration,
            attempted=sum(p["attempted"] for p in sent), committed=commits,
            unanswered=sum(p["unanswered"] for p in sent),
            send_errors=sum(p["send_errors"] for p in sent),
            received=received, lost=sum(p["lost"] for p in got),
            duplicates=sum(p["duplicates"] for p in got),
            out_of_order=sum(p["out_of_order"] for p in got),
            frame_errors=sum(p["errors"] for p in got), closed=sum(p["closed"] for p in got),
            rate=received / window, commit_rate=commits / duration,
            p50=percentile(ordered, 0.50) * 1000, p90=percentile(ordered, 0.90) * 1000,
            p99=percentile(ordered, 0.99) * 1000, max=(ordered[-1] * 1000 if ordered else 0.0),
            rtt_p50=percentile(rtts, 0.5) * 1000, rtt_p99=percentile(rtts, 0.99) * 1000,
            generator_cpu=sum(p["cpu"] for p in sent) + sum(p["cpu"] for p in got),
            elapsed=window,
        )

    def open_count(self) -> int:
        return sum(p["open"] for p in self._all(("stats",), 30))

    def cpu(self) -> float:
        return float(sum(p["cpu"] for p in self._all(("stats",), 30)))

    def close(self) -> None:
        """Close every socket, then end the worker processes (by their PIDs)."""
        for pipe in self.pipes:
            try:
                pipe.send(("close",))
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
