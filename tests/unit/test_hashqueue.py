"""The bounded, fair queue of hash work: who runs next, what is refused, which thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from chatire.auth import HashQueue, Passwords
from chatire.errors import RateLimited, Unavailable
from tests.unit.harness import result


class Workers:
    """Stands in for the thread pool: jobs start when the queue says, end when we say."""

    def __init__(self) -> None:
        self.running: list[tuple[str, Deferred[Any]]] = []

    def start(self, function: Any, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.running.append((args[0], d))
        return d

    def finish(self, label: str) -> None:
        (found,) = [(lbl, d) for lbl, d in self.running if lbl == label]
        self.running.remove(found)
        found[1].callback(label)

    def labels(self) -> list[str]:
        return [label for label, _ in self.running]


def test_a_lone_job_goes_before_a_flooding_clients_backlog() -> None:
    workers = Workers()
    queue = HashQueue(None, workers=2, waiting=32, per_client=4, start=workers.start)
    flood = [queue("203.0.113.1", str, f"flood{i}") for i in range(4)]
    real = queue("198.51.100.1", str, "real")
    assert workers.labels() == ["flood0", "flood1"] and queue.waiting == 3
    workers.finish("flood0")
    assert workers.labels() == ["flood1", "real"]
    workers.finish("real")
    assert result(real) == "real" and result(flood[0]) == "flood0"


def test_clients_with_a_backlog_take_turns() -> None:
    workers = Workers()
    queue = HashQueue(None, workers=1, waiting=32, per_client=4, start=workers.start)
    for i in range(3):
        queue("a", str, f"a{i}")
    for i in range(3):
        queue("b", str, f"b{i}")
    order = []
    while workers.running:
        label = workers.labels()[0]
        order.append(label)
        workers.finish(label)
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_past_a_clients_bound_it_is_refused_at_once_and_others_still_queue() -> None:
    workers = Workers()
    queue = HashQueue(None, workers=1, waiting=32, per_client=2, start=workers.start)
    for i in range(3):  # one runs, two wait
        queue("203.0.113.1", str, f"f{i}")
    with pytest.raises(RateLimited) as refused:
        result(queue("203.0.113.1", str, "f3"))
    assert refused.value.retry_after == 1
    queue("198.51.100.1", str, "real")
    assert queue.waiting == 3


def test_past_the_daemons_bound_every_client_is_refused_with_503() -> None:
    workers = Workers()
    queue = HashQueue(None, workers=1, waiting=3, per_client=4, start=workers.start)
    for i in range(4):  # one runs, three wait
        queue(f"192.0.2.{i}", str, f"j{i}")
    with pytest.raises(Unavailable):
        result(queue("198.51.100.1", str, "late"))
    workers.finish("j0")  # a place frees up
    queue("198.51.100.1", str, "late")
    assert queue.waiting == 3


def test_a_failed_job_frees_its_worker() -> None:
    workers = Workers()
    queue = HashQueue(None, workers=1, start=workers.start)
    first = queue("a", str, "first")
    second = queue("b", str, "second")
    workers.running.pop()[1].errback(ValueError("boom"))
    with pytest.raises(ValueError):
        result(first)
    assert workers.labels() == ["second"]
    workers.finish("second")
    assert result(second) == "second"


@pytest_twisted.ensureDeferred
async def test_argon2_runs_on_the_queues_threads_never_the_reactors() -> None:
    seen: list[str] = []
    queue = HashQueue(reactor, workers=2)

    def run(client: str, function: Any, *args: Any) -> Deferred[Any]:
        def traced(*inner: Any) -> Any:
            seen.append(threading.current_thread().name)
            return function(*inner)
        return queue(client, traced, *args)

    passwords = Passwords(run, time_cost=1, memory_cost=8, parallelism=1)
    stored = await passwords.hash("a phrase of mine", "c")
    assert await passwords.verify(stored, "a phrase of mine", "c") == (True, None)
    assert await passwords.verify(stored, "not it", "c") == (False, None)
    assert (await passwords.dummy_verify("not it", "c"))[0] is False
    assert len(seen) == 4
    assert threading.main_thread().name not in seen
    assert all("chatire-argon2" in name for name in seen), seen
