"""The periodic sweep: the followed chats whose last_seq moved, against what was sent."""

from __future__ import annotations

from collections.abc import Callable, Collection

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatire.errors import ChatireError
from chatire.interfaces import IStore

log = Logger()


class Sweep:
    """Every ``interval`` seconds one store query: the followed chats whose last_seq moved
    since the last sweep's mark (every followed chat after a start, a bus reconnect, a
    failed sweep, or a mark that went back: another database), each handed to ``behind``.

    ``before`` runs first, each time (the control events' replay). A chat named with
    ``check`` is checked in full by the next sweep whatever the mark says (a subscription
    whose read of the chat may predate the mark, a gap fill that stopped short)."""

    def __init__(self, store: IStore, clock: IReactorTime, interval: float,
                 followed: Callable[[], Collection[str]],
                 behind: Callable[[str, int], None],
                 before: Callable[[], Deferred[None]]) -> None:
        self._store = store
        self._interval = interval
        self._followed = followed
        self._behind = behind
        self._before = before
        self._loop = LoopingCall(self.run)
        self._loop.clock = clock
        # The mark of the last sweep (None: the next one checks every followed chat),
        # and the chats the next one checks whatever the mark says.
        self._mark: int | None = None
        self._recheck: set[str] = set()

    def start(self) -> None:
        if self._interval > 0:
            self._loop.start(self._interval, now=False).addErrback(
                lambda f: log.failure("the sweep stopped", f))

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def check_all(self) -> None:
        """The next sweep checks every followed chat (the bus was down: anything may be)."""
        self._mark = None

    def check(self, uri: str) -> None:
        """The next sweep checks this chat whatever the mark says."""
        self._recheck.add(uri)

    def run(self) -> Deferred[None]:
        """One sweep now."""
        return Deferred.fromCoroutine(self._once())

    async def _once(self) -> None:
        # Taken before any wait, so a reconnect's full check is never overtaken by the
        # mark of a sweep that was under way.
        since = self._mark
        recheck, self._recheck = self._recheck, set()
        await self._before()
        followed = self._followed()
        if not followed:
            self._mark = None  # nothing followed: an old mark would only cost rows later
            return
        uris = list(followed) if since is None else [u for u in recheck if u in followed]
        try:
            mark, seqs = await self._store.changed_chats(since, uris)
        except ChatireError:
            self._mark = None  # check everything next time
            self._recheck.update(uris)
            return
        # A mark never goes back on one database: if it did, this is another one.
        self._mark = None if since is not None and mark < since else mark
        for uri, last_seq in seqs.items():
            self._behind(uri, last_seq)
