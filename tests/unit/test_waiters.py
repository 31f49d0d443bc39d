"""Waiters: every caller so far gets the one result, later callers wait for the next."""

from __future__ import annotations

from twisted.python.failure import Failure

from chatire.waiters import Waiters


def test_fire_ends_every_waiter_so_far_and_only_those() -> None:
    waiters: Waiters[int] = Waiters()
    got: list[object] = []
    first, second = waiters.wait(), waiters.wait()
    first.addCallback(got.append)
    second.addCallback(got.append)
    assert waiters and len(waiters) == 2
    waiters.fire(7)
    assert got == [7, 7] and not waiters
    late = waiters.wait()
    waiters.fire(8)
    late.addCallback(got.append)
    assert got == [7, 7, 8]
    waiters.fire(9)  # nobody waiting: nothing happens


def test_a_failure_errbacks_every_waiter() -> None:
    waiters: Waiters[int] = Waiters()
    errors: list[Failure] = []
    for _ in range(2):
        waiters.wait().addErrback(errors.append)
    waiters.fire(Failure(ValueError("gone")))
    assert [e.check(ValueError) for e in errors] == [ValueError, ValueError]
