"""Read marks, coalesced: the latest seq per member within a short window, one write."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatire.interfaces import IStore
from chatire.model import Chat

log = Logger()

#: ``announce(chat_uri, user_id, read_seq, origin)``: a member's read_seq is now this.
Announce = Callable[[str, int, int, object], None]


class ReadMarks:
    """Keeps the highest seq each member marked read for ``window`` seconds, then writes
    them all in one transaction and announces each new value.

    A client scrolling through 500 messages sends up to 500 marks; the store sees one
    write a window (the highest wins), and the user's other sockets one ``read``.
    """

    def __init__(self, store: IStore, clock: IReactorTime, announce: Announce,
                 window: float = 0.5) -> None:
        self._store = store
        self._clock = clock
        self._announce = announce
        self._window = window
        # (chat id, user id) -> (chat uri, highest seq, the socket that marked it last)
        self._pending: dict[tuple[int, int], tuple[str, int, object]] = {}
        self._timer: IDelayedCall | None = None
        self.writes = 0  # transactions written (a test counts them)

    def mark(self, chat: Chat, user_id: int, seq: int, origin: object = None) -> None:
        """Note that the user read the chat up to seq (a lower mark than one pending is kept
        out; the store never lowers read_seq either)."""
        key = (chat.id, user_id)
        held = self._pending.get(key)
        if held is None or seq > held[1]:
            self._pending[key] = (chat.uri, seq, origin)
        if self._timer is None:
            self._timer = self._clock.callLater(self._window, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        self.flush().addErrback(lambda f: log.failure("writing read marks failed", f))

    def flush(self) -> Deferred[None]:
        """Write what is pending now (at shutdown, or when the window ends)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self._pending:
            return succeed(None)
        pending, self._pending = self._pending, {}
        self.writes += 1
        marks = [(chat_id, user_id, seq) for (chat_id, user_id), (_, seq, _) in pending.items()]
        d: Deferred[list[tuple[int, int, int]]] = self._store.mark_read(marks)

        def written(done: list[tuple[int, int, int]]) -> None:
            for chat_id, user_id, read_seq in done:
                uri, _, origin = pending[(chat_id, user_id)]
                self._announce(uri, user_id, read_seq, origin)

        def failed(failure: Failure) -> None:
            # Read state is the user's convenience: a store outage loses at most one
            # window of marks, and the client marks again as it reads.
            log.warn("read marks not written: {error}", error=str(failure.value))

        d.addCallbacks(written, failed)
        return d.addCallback(lambda _: None)
