"""Waiters: Deferreds handed out to callers until one result fires them all."""

from __future__ import annotations

from typing import Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

T = TypeVar("T")


class Waiters(Generic[T]):
    """Callers waiting for one event: ``wait()`` gives each a Deferred, ``fire()`` ends them all."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: list[Deferred[T]] = []

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def __len__(self) -> int:
        return len(self._waiting)

    def wait(self) -> Deferred[T]:
        """A Deferred that fires with the next ``fire()``'s result."""
        d: Deferred[T] = Deferred()
        self._waiting.append(d)
        return d

    def fire(self, result: T | Failure) -> None:
        """Fire every waiter so far with the result (a Failure errbacks them)."""
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)
