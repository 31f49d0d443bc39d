"""Per-key rate limits on the reactor's clock: a token bucket; Retry-After values."""

from __future__ import annotations

import math
import threading

from twisted.internet.interfaces import IReactorTime

#: Forget idle keys once there are this many, so memory stays bounded.
_PRUNE_AT = 10_000


class TokenBucket:
    """``rate`` tokens a second up to ``burst`` per key; ``rate`` 0 lets everything by.

    ``take`` may be called from a store thread too (a timeline change's rules run in its
    SQLite transaction): a lock, held for a few dict operations, keeps it whole.
    """

    def __init__(self, clock: IReactorTime, rate: float, burst: int) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._buckets: dict[object, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: object) -> float:
        """Take one token: 0.0 if allowed, else the seconds until one is available."""
        if self._rate <= 0:
            return 0.0
        with self._lock:
            return self._take(key)

    def _take(self, key: object) -> float:
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


def whole_seconds(delay: float) -> int:
    """A Retry-After value: whole seconds, at least 1."""
    return max(1, math.ceil(delay))
