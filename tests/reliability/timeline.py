"""A chat's timeline as the checker sees it: entries (one a seq), message states, replicas.

An :class:`Entry` is one seq of a chat: a message or an event (edit, delete, react,
unreact, join, leave), parsed from a socket frame or from the store's
``GET /api/chats/{uri}/events``. A :class:`Replica` builds the messages of a chat the
way a follower does: a message frame gives the message's state when it was sent, and
each event after it is applied in order, idempotently (an event applied twice changes
nothing), so a replayed message that already shows later changes still ends right.
A delete erases the message's text, its edits' texts and its reactions (PROTOCOL.md
names the texts; chatire erases the reactions with them, and so a delete here does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

#: How many reactors of one emoji a message shows (the earliest); its ``count`` is exact.
USERS_SHOWN = 10

#: The event kinds that change a message (each names it by ``target``).
CHANGES = ("edit", "delete", "react", "unreact")


@attrs.frozen
class Reaction:
    """One emoji on a message: how many reacted with it, and who (all, or some)."""

    emoji: str
    count: int
    users: frozenset[int]


@attrs.frozen
class MessageState:
    """A message as it stands: its text (None: not known), deleted, edited, reactions."""

    text: str | None
    deleted: bool = False
    edited: bool = False
    reactions: tuple[Reaction, ...] = ()  # by emoji; only those with a count above 0

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> MessageState:
        """The state a Message object (a frame, an HTTP reply) shows."""
        reactions = [Reaction(r["emoji"], r["count"], frozenset(r["users"]))
                     for r in body.get("reactions") or () if r["count"] > 0]
        return cls(text=body["message"], deleted=bool(body.get("deleted")),
                   edited=body.get("edited_at") is not None,
                   reactions=tuple(sorted(reactions, key=lambda r: r.emoji)))

    def mismatch(self, got: MessageState, partial: Iterable[str] = ()) -> str | None:
        """Why ``got`` is not this (expected) state; None when it is.

        ``users`` must be exact for an emoji of at most USERS_SHOWN reactors, else only a
        part of the expected users (a frame lists the earliest ones); ``partial`` names
        emoji ``got`` knows only in part whatever their count now (a follower that saw
        a frame of more than USERS_SHOWN reactors, then unreacts).
        """
        if got.deleted != self.deleted:
            return "deleted" if got.deleted else "not deleted"
        if got.deleted and got.text != "":
            return f"deleted, yet its text is {got.text!r}"
        if not self.deleted:
            if self.text is not None and got.text != self.text:
                return f"text {got.text!r}, not {self.text!r}"
            if got.edited != self.edited:
                return "edited" if got.edited else "not edited"
        want = {r.emoji: r for r in self.reactions}
        have = {r.emoji: r for r in got.reactions}
        if want.keys() != have.keys():
            return f"reactions {sorted(have)}, not {sorted(want)}"
        loose = set(partial)
        for emoji, w in want.items():
            h = have[emoji]
            if h.count != w.count:
                return f"{emoji} count {h.count}, not {w.count}"
            if emoji in loose or w.count > USERS_SHOWN:
                if not h.users <= w.users:
                    return f"{emoji} by {sorted(h.users - w.users)}, who did not react"
            elif h.users != w.users:
                return f"{emoji} by {sorted(h.users)}, not {sorted(w.users)}"
        return None


@attrs.frozen
class Entry:
    """One seq of a chat's timeline (a message or an event), as a frame or the store shows it."""

    seq: int
    id: int
    client_id: str | None = None
    kind: str = "message"
    user: int | None = None
    target: int | None = None
    text: str | None = None  # a message's text, or an edit's new text ("" once erased)
    emoji: str | None = None
    count: int | None = None  # react / unreact: the emoji's count after this event
    state: MessageState | None = attrs.field(default=None, eq=False)  # a message's state

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Entry:
        """A message frame, an event frame, or an item of GET messages or GET events."""
        kind = body.get("kind", "message")  # a socket message frame has no kind
        user = body.get("user")
        user_id = user.get("id") if isinstance(user, Mapping) else None
        if kind == "message":
            return cls(body["seq"], body["id"], body.get("client_id"), kind, user_id,
                       text=body["message"], state=MessageState.parse(body))
        return cls(body["seq"], body["id"], None, kind, user_id, body.get("target"),
                   body.get("message"), body.get("emoji"), body.get("count"))


@attrs.define
class _Draft:
    """A message being built by a Replica."""

    text: str | None
    deleted: bool
    edited: bool
    counts: dict[str, int]
    users: dict[str, set[int]]
    partial: set[str]


class Replica:
    """The messages of one chat built by applying its entries in order, idempotently.

    An event without a ``count`` (the checker's own model) counts the users it knows.
    Events on a message the replica never had (before its start) change nothing.
    """

    def __init__(self) -> None:
        self._drafts: dict[int, _Draft] = {}

    def apply(self, entry: Entry) -> None:
        if entry.kind == "message":
            s = entry.state or MessageState(entry.text)
            self._drafts[entry.seq] = _Draft(
                s.text, s.deleted, s.edited, {r.emoji: r.count for r in s.reactions},
                {r.emoji: set(r.users) for r in s.reactions},
                {r.emoji for r in s.reactions if r.count > USERS_SHOWN})
            return
        d = self._drafts.get(entry.target) if entry.target is not None else None
        if d is None:
            return
        if entry.kind == "edit":
            d.edited = True
            if not d.deleted:
                d.text = entry.text
        elif entry.kind == "delete":  # erases the text and the reactions
            d.deleted, d.text = True, ""
            d.counts.clear()
            d.users.clear()
            d.partial.clear()
        elif entry.kind in ("react", "unreact") and entry.emoji is not None:
            users = d.users.setdefault(entry.emoji, set())
            if entry.user is not None:
                if entry.kind == "react":
                    users.add(entry.user)
                else:
                    users.discard(entry.user)
            count = len(users) if entry.count is None else entry.count
            if count > 0:
                d.counts[entry.emoji] = count
            else:
                d.counts.pop(entry.emoji, None)
                d.users.pop(entry.emoji, None)
                d.partial.discard(entry.emoji)

    def __contains__(self, seq: int) -> bool:
        return seq in self._drafts

    def seqs(self) -> list[int]:
        return sorted(self._drafts)

    def state(self, seq: int) -> tuple[MessageState, frozenset[str]] | None:
        """Message ``seq`` as built so far, and the emoji whose users it knows in part."""
        d = self._drafts.get(seq)
        if d is None:
            return None
        reactions = tuple(Reaction(e, n, frozenset(d.users.get(e, ())))
                          for e, n in sorted(d.counts.items()))
        return (MessageState(d.text, d.deleted, d.edited, reactions), frozenset(d.partial))

    def count(self, seq: int, emoji: str) -> int:
        """The count of ``emoji`` on message ``seq`` as built so far."""
        d = self._drafts.get(seq)
        return d.counts.get(emoji, 0) if d is not None else 0
