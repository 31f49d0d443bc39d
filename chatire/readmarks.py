"""Read marks: told to the member's other sockets at once, written coalesced (the latest
seq per member within a short window, one write)."""

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

#: Seconds between two early announcements of one member's marks in a chat: a single mark
#: is told at once, a scroll through many messages at most this often (and its last mark
#: at the end of the interval).
TELL_EVERY = 0.025


class ReadMarks:
    """Keeps the highest seq each member marked read for ``window`` seconds, then writes
    them all in one transaction and announces each new value.

    A mark from a socket that was sent the chat up to ``known`` is told to the user's
    other sockets before the write (capped at ``known``, which the store holds already):
    at once, then at most every TELL_EVERY seconds per member while they scroll. The
    write announces only what it stored beyond that. A client scrolling through 500
    messages sends up to 500 marks; the store sees one write a window (the highest wins).
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
        # (chat id, user id) -> (highest seq told early, when, what is owed: uri, seq, origin)
        self._told: dict[tuple[int, int], tuple[int, float, tuple[str, int, object] | None]] = {}
        self._tell_timer: IDelayedCall | None = None
        self.writes = 0  # transactions written (a test counts them)

    def mark(self, chat: Chat, user_id: int, seq: int, origin: object = None,
             known: int | None = None) -> None:
        """Note that the user read the chat up to seq (a lower mark than one pending is kept
        out; the store never lowers read_seq either). ``known``: the seq the marking
        socket was sent up to, so the mark, capped there, is stored already and can be
        told before it is written."""
        key = (chat.id, user_id)
        held = self._pending.get(key)
        if held is None or seq > held[1]:
            self._pending[key] = (chat.uri, seq, origin)
        elif seq == held[1] and origin is not held[2]:  # marked from two places: tell all
            self._pending[key] = (chat.uri, seq, None)
        if self._timer is None:
            self._timer = self._clock.callLater(self._window, self._flush_later)
        if known is not None:
            self._tell_early(key, chat.uri, user_id, min(seq, known), origin)
        else:  # told after the write, to every socket of the user (the origin is not one)
            self._told.pop(key, None)

    def _tell_early(self, key: tuple[int, int], uri: str, user_id: int, seq: int,
                    origin: object) -> None:
        told = self._told.get(key)
        if seq <= 0 or (told is not None and seq <= told[0]):
            return  # nothing read yet (a socket sent nothing), or told already
        now = self._clock.seconds()
        if told is None or now - told[1] >= TELL_EVERY:
            self._told[key] = (seq, now, None)
            self._announce(uri, user_id, seq, origin)
            return
        self._told[key] = (told[0], told[1], (uri, seq, origin))
        if self._tell_timer is None:
            self._tell_timer = self._clock.callLater(TELL_EVERY, self._tell_owed)

    def _tell_owed(self) -> None:
        """Tell the marks held back by TELL_EVERY (flush forgets what was told and written)."""
        self._tell_timer = None
        now = self._clock.seconds()
        owed = False
        for key, (seq, at, due) in list(self._told.items()):
            if due is not None and now - at >= TELL_EVERY:
                uri, seq, origin = due
                self._told[key] = (seq, now, None)
                self._announce(uri, key[1], seq, origin)
            elif due is not None:
                owed = True
        if owed:
            self._tell_timer = self._clock.callLater(TELL_EVERY, self._tell_owed)

    def _flush_later(self) -> None:
        self._timer = None
        self.flush().addErrback(lambda f: log.failure("writing read marks failed", f))

    def flush(self) -> Deferred[None]:
        """Write what is pending now (at shutdown, or when the window ends)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        now = self._clock.seconds()
        for key, (_, at, due) in list(self._told.items()):
            if due is None and key not in self._pending and now - at >= self._window:
                del self._told[key]  # nothing to compare a later mark with: it was written
        if not self._pending:
            return succeed(None)
        pending, self._pending = self._pending, {}
        self.writes += 1
        marks = [(chat_id, user_id, seq) for (chat_id, user_id), (_, seq, _) in pending.items()]
        d: Deferred[list[tuple[int, int, int]]] = self._store.mark_read(marks)

        def written(done: list[tuple[int, int, int]]) -> None:
            for chat_id, user_id, read_seq in done:
                uri, _, origin = pending[(chat_id, user_id)]
                told = self._told.get((chat_id, user_id))
                if told is not None:
                    if read_seq <= told[0]:
                        continue  # told before the write already
                    owed = told[2] if told[2] is not None and told[2][1] > read_seq else None
                    self._told[(chat_id, user_id)] = (read_seq, told[1], owed)
                self._announce(uri, user_id, read_seq, origin)

        def failed(failure: Failure) -> None:
            # Read state is the user's convenience: a store outage loses at most one
            # window of marks, and the client marks again as it reads.
            log.warn("read marks not written: {error}", error=str(failure.value))

        d.addCallbacks(written, failed)
        return d.addCallback(lambda _: None)
