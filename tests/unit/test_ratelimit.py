"""Rate limits on the Clock: the send bucket (sign-in failures: test_logins)."""

from __future__ import annotations

from twisted.internet.task import Clock

from chatire.ratelimit import TokenBucket


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(clock, rate=10, burst=5)
    assert [bucket.take("u") for _ in range(5)] == [0.0] * 5
    wait = bucket.take("u")
    assert 0.09 < wait <= 0.1
    assert bucket.take("other") == 0.0
    clock.advance(0.1)
    assert bucket.take("u") == 0.0
    assert bucket.take("u") > 0


def test_rate_zero_turns_the_bucket_off() -> None:
    bucket = TokenBucket(Clock(), rate=0, burst=1)
    assert all(bucket.take("u") == 0.0 for _ in range(1000))
