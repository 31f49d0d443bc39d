"""Who a burst of committed messages is due for: the reachable members, once per burst."""

from __future__ import annotations

import secrets
from datetime import timedelta

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatire.errors import ChatireError
from chatire.interfaces import INotifyStore
from chatire.model import Message, utc_from_timestamp
from chatire.notify.due import Roster, RosterEntry
from chatire.notify.mentions import mentions
from chatire.waiters import Waiters

log = Logger()

#: Seconds a chat's roster is trusted before it is read again. Changes made on this
#: daemon, and settings changes on any (a control event), drop it at once; a member
#: who joined on another daemon is seen within this time.
ROSTER_TTL = 10.0
#: Rosters kept at most (the chats that posted most recently).
MAX_ROSTERS = 10000


def new_id() -> str:
    """A notification id: random, so receivers can tell notifications apart across daemons."""
    return "n_" + secrets.token_urlsafe(16)


class Planner:
    """Opens a due notification for each reachable member a burst is due for.

    A chat's messages committed in one reactor turn (a group commit) are planned
    together: the roster (members with a channel, read once and kept) is filtered
    in memory, members whose burst is already open are skipped, and the rest get
    their rows in one insert. A chat where nobody can be reached costs nothing
    after its roster is read; an ongoing burst costs nothing more until it is due.
    """

    def __init__(self, store: INotifyStore, clock: IReactorTime) -> None:
        self._store = store
        self._clock = clock
        self._waiting: dict[str, tuple[list[Message], Waiters[None]]] = {}
        self._rosters: dict[str, tuple[float, Roster | None]] = {}
        self._open: dict[tuple[str, int], float] = {}  # bursts opened here, until due

    def message_committed(self, message: Message) -> Deferred[None] | None:
        """A message was committed on this daemon: plan its chat at the end of this turn.

        The Deferred fires once the burst rows it needs are stored (never with an
        error): a post is confirmed only then, so a daemon killed after the reply
        still owes the notification, and any daemon sends it. None: nobody in the
        chat can be reached (the roster says so), nothing to wait for.
        """
        kept = self._rosters.get(message.chat)
        if kept is not None and kept[0] > self._clock.seconds() and (
                kept[1] is None or not kept[1].entries):
            return None
        waiting = self._waiting.get(message.chat)
        if waiting is None:
            waiting = self._waiting[message.chat] = ([], Waiters())
            self._clock.callLater(0, self._plan, message.chat)
        waiting[0].append(message)
        return waiting[1].wait()

    def forget_rosters(self) -> None:
        """Someone's settings or a chat level changed: read rosters again when next needed."""
        self._rosters.clear()

    def _plan(self, uri: str) -> None:
        messages, waiters = self._waiting.pop(uri)
        Deferred.fromCoroutine(self._open_bursts(uri, messages)).addErrback(
            lambda f: log.warn("notifications for {chat} not planned: {error}",
                               chat=uri, error=str(f.value))).addBoth(
            lambda _: waiters.fire(None))

    async def _roster(self, uri: str) -> Roster | None:
        now = self._clock.seconds()
        kept = self._rosters.get(uri)
        if kept is not None and kept[0] > now:
            return kept[1]
        try:
            roster = await self._store.roster(uri)
        except ChatireError:
            return None
        if len(self._rosters) >= MAX_ROSTERS:
            self._rosters.clear()
        self._rosters[uri] = (now + ROSTER_TTL, roster)
        return roster

    async def _open_bursts(self, uri: str, messages: list[Message]) -> None:
        roster = await self._roster(uri)
        if roster is None or not roster.entries:
            return
        now = self._clock.seconds()
        rows = []
        for entry in roster.entries:
            key = (uri, entry.user_id)
            if self._open.get(key, 0.0) > now:
                continue  # its burst is open: the notification will list these too
            first = _first_due(entry, messages)
            if first is None:
                continue
            due_at = first.created_at + timedelta(seconds=entry.delay)
            rows.append((new_id(), entry.user_id, first.seq, due_at))
            self._open[key] = due_at.timestamp()
        if not rows:
            return
        self._prune(now)
        try:
            await self._store.add_due(roster.chat_id, rows, utc_from_timestamp(now))
        except BaseException:
            # Not stored: the next post in this chat opens these bursts again.
            for _, user_id, _, _ in rows:
                self._open.pop((uri, user_id), None)
            raise

    def _prune(self, now: float) -> None:
        if len(self._open) > 4 * MAX_ROSTERS:
            self._open = {key: until for key, until in self._open.items() if until > now}


def _first_due(entry: RosterEntry, messages: list[Message]) -> Message | None:
    """The first of the messages due for the member: by someone else, and at their level."""
    for message in messages:
        if message.user.id == entry.user_id:
            continue
        if entry.level == "all" or mentions(message.message, entry.username):
            return message
    return None
