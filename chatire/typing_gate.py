"""The typing interval: at most one typing frame per user and chat is relayed in it."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime


class TypingGate:
    """Which typing frames go on: one per (user, chat) an interval; 0 lets every one by."""

    def __init__(self, clock: IReactorTime, interval: float) -> None:
        self._clock = clock
        self._interval = interval
        self._last: dict[tuple[int, str], float] = {}

    def admit(self, user_id: int, chat: str) -> bool:
        """Whether this typing frame is relayed (and, if so, the interval starts again)."""
        if self._interval <= 0:
            return True
        now, key = self._clock.seconds(), (user_id, chat)
        if now - self._last.get(key, float("-inf")) < self._interval:
            return False
        self._last[key] = now
        return True

    def ended(self, user_id: int, chat: str) -> None:
        """The user posted in the chat: the next keystroke is a new burst of typing."""
        self._last.pop((user_id, chat), None)

    def forget_old(self) -> None:
        """Drop times older than the interval: they limit nothing any more."""
        if self._last:
            horizon = self._clock.seconds() - self._interval
            self._last = {k: t for k, t in self._last.items() if t > horizon}
