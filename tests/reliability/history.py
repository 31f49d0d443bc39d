"""A Jepsen-style history of a chat load: what clients did, what they got, what the store holds.

Operations are of two sorts. A **send** posts a new message; it is named by its
``client_id`` (unique in a history). A **change** edits, deletes, reacts to or unreacts
a message (a ``target`` seq) over HTTP; it is named by a key the history gives it. Each
ends ``ok`` (acknowledged: a send with a seq and an id, a change with the event it made,
or with none when there was nothing to change), ``failed`` (refused: certainly not
done) or ``indeterminate`` (no answer, or ``unavailable``: it may or may not be done).
Each receipt is one frame of a chat a client got, a message or an event, in the order
it got them; a follower stayed subscribed to a chat from a seq on (resuming with
``after`` whenever it reconnected). At the end the history holds what the store has:
the chat's timeline (GET events) and the state of each message (GET messages).

``check()`` (tests/reliability/checker.py) judges it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

import attrs

from tests.reliability.timeline import CHANGES, Entry, MessageState

#: Error codes after which an operation is certainly not done.
DEFINITE_FAILURES = frozenset({"invalid", "forbidden", "not_found", "rate_limited",
                               "unauthenticated", "too_large", "conflict"})

#: One entry of the store's timeline (the name the history has always used).
Stored = Entry


class Outcome(Enum):
    """How an operation ended, as its client knows it."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    INDETERMINATE = "indeterminate"


@attrs.define
class Send:
    """One logical send (its retries share the client_id); the last word on it."""

    client: str
    chat: str
    client_id: str
    outcome: Outcome = Outcome.PENDING
    seq: int | None = None
    id: int | None = None
    attempts: int = 0
    error: str | None = None
    text: str | None = None  # what was sent (None: the checker does not know)


@attrs.define
class Change:
    """One edit, delete, react or unreact of a message by a client; the last word on it."""

    key: str
    client: str
    user: int
    chat: str
    kind: str
    target: int
    text: str | None = None  # edit: the new text
    emoji: str | None = None  # react / unreact
    outcome: Outcome = Outcome.PENDING
    seq: int | None = None  # the acknowledged event's (None: acknowledged with no event)
    id: int | None = None
    error: str | None = None
    event: Entry | None = None  # the acknowledged event as the reply showed it

    def entry(self, seq: int, id: int) -> Entry:
        """This change as the event it makes at ``seq`` (for the checker's model)."""
        return Entry(seq, id, None, self.kind, self.user, self.target, self.text, self.emoji)


@attrs.frozen
class Receipt:
    """One frame of a chat a client got: a message or an event."""

    client: str
    chat: str
    entry: Entry

    @property
    def seq(self) -> int:
        return self.entry.seq

    @property
    def id(self) -> int:
        return self.entry.id

    @property
    def client_id(self) -> str | None:
        return self.entry.client_id

    @property
    def kind(self) -> str:
        return self.entry.kind


@attrs.frozen
class Report:
    """The checker's verdict: six counts (all 0 for a correct run) and some figures."""

    lost: int
    duplicated: int
    unexpected: int
    gaps: int
    reordered: int
    sends: int
    ok: int
    failed: int
    indeterminate: int
    receipts: int
    wrong: int = 0
    changes: int = 0
    changes_ok: int = 0
    changes_failed: int = 0
    changes_indeterminate: int = 0
    details: tuple[str, ...] = ()

    @property
    def anomalies(self) -> dict[str, int]:
        return {"lost": self.lost, "duplicated": self.duplicated,
                "unexpected": self.unexpected, "gaps": self.gaps, "reordered": self.reordered,
                "wrong": self.wrong}

    @property
    def clean(self) -> bool:
        return not any(self.anomalies.values())

    def summary(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.anomalies.items())
        return (f"{counts} | sends={self.sends} ok={self.ok} failed={self.failed} "
                f"indeterminate={self.indeterminate} | changes={self.changes} "
                f"ok={self.changes_ok} failed={self.changes_failed} "
                f"indeterminate={self.changes_indeterminate} | receipts={self.receipts}")


class History:
    """What happened in a run, recorded as it happens; ``check()`` judges it."""

    def __init__(self, max_details: int = 20) -> None:
        self.sends: dict[str, Send] = {}
        self.changes: dict[str, Change] = {}
        self.receipts: list[Receipt] = []
        self.follows: dict[tuple[str, str], int] = {}
        self.stored: dict[str, list[Entry]] = {}
        self.states: dict[str, dict[int, MessageState]] = {}
        self.joins: dict[str, dict[int, bool]] = {}  # chat -> user id -> is its creator
        self.max_details = max_details

    # -- sends ---------------------------------------------------------------------------

    def invoke(self, client: str, chat: str, client_id: str, text: str | None = None) -> Send:
        """A send is about to go out (the first attempt)."""
        if client_id in self.sends:
            raise ValueError(f"client_id {client_id!r} used twice in one history")
        send = self.sends[client_id] = Send(client, chat, client_id, text=text)
        return send

    def attempt(self, client_id: str) -> None:
        """One more try of a send (the same client_id: a retry)."""
        self.sends[client_id].attempts += 1

    def ok(self, client_id: str, seq: int, id: int) -> None:
        """The send was acknowledged (201/200, or ``sent``) with this seq and id."""
        send = self.sends[client_id]
        send.outcome, send.seq, send.id = Outcome.OK, seq, id

    # -- changes ---------------------------------------------------------------------------

    def change(self, client: str, user: int, chat: str, kind: str, target: int, *,
               text: str | None = None, emoji: str | None = None) -> Change:
        """A change of message ``target`` is about to go out (made one at a time per client
        and message); its key names it in ``applied``, ``fail`` and ``unknown``."""
        if kind not in CHANGES:
            raise ValueError(f"not a change: {kind!r}")
        key = f"~{len(self.changes) + 1}"
        change = self.changes[key] = Change(key, client, user, chat, kind, target, text, emoji)
        return change

    def applied(self, key: str, event: Mapping[str, Any] | None) -> None:
        """The change was acknowledged (200) with this event, or with ``null``."""
        change = self.changes[key]
        change.outcome = Outcome.OK
        if event is not None:
            change.event = Entry.parse(event)
            change.seq, change.id = change.event.seq, change.event.id

    # -- either ------------------------------------------------------------------------------

    def _op(self, key: str) -> Send | Change:
        return self.changes[key] if key in self.changes else self.sends[key]

    def fail(self, key: str, code: str) -> None:
        """The operation was refused: failed if ``code`` is definite, else indeterminate."""
        op = self._op(key)
        if op.outcome is Outcome.OK:
            return  # an earlier attempt was acknowledged: that stands
        op.error = code
        if code in DEFINITE_FAILURES and op.outcome is not Outcome.INDETERMINATE:
            op.outcome = Outcome.FAILED
        else:
            op.outcome = Outcome.INDETERMINATE

    def unknown(self, key: str) -> None:
        """No answer came (connection lost, time out): it may be done or not."""
        op = self._op(key)
        if op.outcome is not Outcome.OK:
            op.outcome = Outcome.INDETERMINATE

    # -- what clients got, and what the store holds ---------------------------------------------

    def receive(self, client: str, chat: str, seq: int, id: int,
                client_id: str | None = None, **fields: Any) -> None:
        """``client`` got a frame of ``chat`` (a message unless ``kind`` says otherwise)."""
        self.receipts.append(Receipt(client, chat, Entry(seq, id, client_id, **fields)))

    def receive_frame(self, client: str, frame: Mapping[str, Any]) -> None:
        """``client`` got a message or event frame."""
        self.receipts.append(Receipt(client, frame["chat"], Entry.parse(frame)))

    def follow(self, client: str, chat: str, after: int) -> None:
        """``client`` follows ``chat`` from ``after`` on, for the whole run."""
        self.follows.setdefault((client, chat), after)

    def joined(self, chat: str, user: int, *, creator: bool = False) -> None:
        """``user`` joined ``chat`` (acknowledged), or created it (which makes no event)."""
        self.joins.setdefault(chat, {}).setdefault(user, creator)

    def store(self, chat: str, timeline: Iterable[Entry],
              states: Mapping[int, MessageState] | None = None) -> None:
        """What the store holds for a chat at the end: its timeline (every kind, or only
        the messages), and the state of each message if known (by seq)."""
        self.stored[chat] = sorted(timeline, key=lambda e: e.seq)
        if states is not None:
            self.states[chat] = dict(states)

    def check(self) -> Report:
        from tests.reliability.checker import check

        return check(self)
