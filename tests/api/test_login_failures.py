"""Failed sign-ins in the store (both dialects): counted over a sliding minute, then forgotten."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest_twisted
from twisted.internet import reactor

from chatire.logins import LoginLimits
from chatire.store import store_from_url

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest_twisted.ensureDeferred
async def test_failures_are_counted_for_a_minute_per_name_and_address(db_url: str) -> None:
    store = store_from_url(db_url, reactor)
    await store.start()
    limits = LoginLimits(store, per_name=3, per_address=5)
    for second in (0, 10, 20):
        assert await limits.retry_after("Bob", "192.0.2.1", at(second)) == 0.0
        await limits.failed("bob", "192.0.2.1", at(second))
    assert await limits.retry_after("BOB", "192.0.2.1", at(30)) == 30.0  # the name, any case
    assert await limits.retry_after("bob", "192.0.2.2", at(30)) == 0.0  # another address
    assert await limits.retry_after("carol", "192.0.2.1", at(30)) == 0.0
    await limits.failed("carol", "192.0.2.1", at(30))
    await limits.failed(None, "192.0.2.1", at(40))  # a taken name at sign-up
    assert await limits.retry_after("dave", "192.0.2.1", at(45)) == 15.0  # the address: 5
    assert await limits.retry_after("bob", "192.0.2.1", at(60)) == 0.0  # the first expired
    assert await store.login_failures(["a|192.0.2.1"], at(0)) == {"a|192.0.2.1": (4, at(10))}
    await limits.failed("erin", "192.0.2.9", at(200))  # writing forgets what is past
    assert await store.login_failures(["a|192.0.2.1", "a|192.0.2.9"], at(-1)) == {
        "a|192.0.2.9": (1, at(200))}
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_any_username_a_client_sends_makes_a_short_key(db_url: str) -> None:
    store = store_from_url(db_url, reactor)
    await store.start()
    limits = LoginLimits(store, per_name=1, per_address=5)
    name = secrets.token_hex(30_000)  # beyond what an index row may hold, if kept as is
    await limits.failed(name, "192.0.2.1", T0)
    assert await limits.retry_after(name.upper(), "192.0.2.1", T0) == 60.0
    assert await limits.retry_after(name + "x", "192.0.2.1", T0) == 0.0
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_a_limit_of_0_is_off(db_url: str) -> None:
    store = store_from_url(db_url, reactor)
    await store.start()
    limits = LoginLimits(store, per_name=0, per_address=0)
    for _ in range(10):
        await limits.failed("bob", "192.0.2.1", T0)
    assert await limits.retry_after("bob", "192.0.2.1", T0) == 0.0
    assert await store.login_failures(["a|192.0.2.1"], at(-60)) == {}
    await store.stop()
