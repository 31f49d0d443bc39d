"""Per-key rate limits on the reactor's clock: a token bucket and a failure window."""

from __future__ import annotations

import math
from collections import deque

from twisted.internet.interfaces import IReactorTime

#: Forget idle keys once there are this many, so memory stays bounded.
_PRUNE_AT = 10_000


class TokenBucket:
    """``rate`` tokens a second up to ``burst`` per key; ``rate`` 0 lets everything by."""

    def __init__(self, clock: IReactorTime, rate: float, burst: int) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._buckets: dict[object, tuple[float, float]] = {}

    def take(self, key: object) -> float:
        """Take one token: 0.0 if allowed, else the seconds until one is available."""
        if self._rate <= 0:
            return 0.0
        now = self._clock.seconds()
        tokens, stamp = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate
        if len(self._buckets) >= _PRUNE_AT:
            self._prune(now)
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0

    def _prune(self, now: float) -> None:
        full = [k for k, (t, s) in self._buckets.items()
                if t + (now - s) * self._rate >= self._burst]
        for key in full:
            del self._buckets[key]


class FailureWindow:
    """At most ``limit`` failures per key in any ``window`` seconds; 0 turns it off."""

    def __init__(self, clock: IReactorTime, limit: int, window: float = 60.0) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float:
        """0.0 if another attempt is allowed now, else the seconds to wait."""
        if self._limit <= 0:
            return 0.0
        times = self._recent(key)
        if len(times) < self._limit:
            return 0.0
        return max(0.0, times[0] + self._window - self._clock.seconds())

    def fail(self, key: str) -> None:
        if self._limit <= 0:
            return
        if len(self._failures) >= _PRUNE_AT:
            for stale in [k for k in self._failures if not self._recent(k)]:
                del self._failures[stale]
        self._recent(key).append(self._clock.seconds())

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.setdefault(key, deque(maxlen=max(self._limit, 1)))
        horizon = self._clock.seconds() - self._window
        while times and times[0] <= horizon:
            times.popleft()
        return times


def whole_seconds(delay: float) -> int:
    """A Retry-After value: whole seconds, at least 1."""
    return max(1, math.ceil(delay))
