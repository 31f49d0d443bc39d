"""A long chat history as rows: mixed timeline entries, as the daemon itself would store them.

The rows follow chatire/store (timeline.py, events.py, queries.py): one seq per entry
with no gap across ``messages`` and ``events``; one id sequence for both tables; an
edit's text on its message (``edited_at`` too); a delete erasing the message's text,
its edits' texts and its reactions; reactions rows matching the react and unreact
events (each event's ``count`` is that emoji's count after it); members as the joins
and leaves left them. Only members act, only authors edit, a message is deleted by
its author (the owner when the author is away), and a deleted message is never
edited or reacted to again. Seeded: the same arguments give the same rows.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chatire.jsonin import encode
from chatire.model import iso

#: The share of each kind among the entries written (a join or a leave, in turn).
MIX: dict[str, float] = {"message": 0.70, "edit": 0.08, "react": 0.12, "unreact": 0.03,
                         "delete": 0.04, "join_leave": 0.03}
EMOJI = ("👍", "🎉", "❤️", "😂", "👀", "🚀", "+1", "ok")
#: Edits, reactions and deletes pick among this many of the latest messages.
RECENT = 300
_WORDS = ("the build is green again", "who has the key to room 4", "lunch at noon?",
          "merged, thanks", "can you look at the logs", "deploying now", "rolled back",
          "see the issue for details", "ok", "on my way", "that test is flaky again")

#: Column order of the rows below, as in chatire/store/schema.py.
MESSAGE_COLUMNS = ("id", "chat_id", "seq", "user_id", "body", "client_id", "created_at",
                   "reply_to", "edited_at", "deleted")
EVENT_COLUMNS = ("id", "chat_id", "seq", "kind", "user_id", "target", "body", "data",
                 "created_at")
REACTION_COLUMNS = ("chat_id", "target", "emoji", "user_id", "created_at")
# Positions in a message row.
_SEQ, _AUTHOR, _BODY, _EDITED, _DELETED = 2, 3, 4, 8, 9


@dataclass
class _Message:
    row: list[Any]
    edits: list[list[Any]] = field(default_factory=list)  # its edit events' rows
    emoji: dict[str, dict[int, datetime]] = field(default_factory=dict)  # user -> when


@dataclass
class Rows:
    """The rows of one chat's history, ready to insert, and what they hold."""

    messages: list[list[Any]] = field(default_factory=list)
    events: list[list[Any]] = field(default_factory=list)
    reactions: list[tuple[Any, ...]] = field(default_factory=list)
    #: Members who left and came back: user id -> (joined_at, read_seq) now.
    rejoined: dict[int, tuple[datetime, int]] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    last_at: datetime | None = None
    last_id: int = 0


class History:
    """Writes entries first_seq..last_seq of one chat whose members all stay members."""

    def __init__(self, chat_id: int, owner: int, members: list[int], first_seq: int,
                 first_id: int, seed: int = 12) -> None:
        self.chat_id = chat_id
        self.owner = owner
        self.members = set(members)
        self.churners = sorted(self.members - {owner})  # the owner never leaves
        self.away: list[int] = []
        self.seq = first_seq - 1
        self.next_id = first_id
        self.rng = random.Random(seed)
        self.clock = datetime.now(UTC) - timedelta(days=60)
        self.recent: deque[_Message] = deque(maxlen=RECENT)
        self.reacted: dict[int, _Message] = {}  # every message that ever had a reaction
        self.rows = Rows()

    def write(self, last_seq: int) -> Rows:
        """Everything up to ``last_seq``; whoever is away rejoins in the last entries."""
        kinds, weights = zip(*MIX.items(), strict=True)
        while self.seq < last_seq:
            if last_seq - self.seq <= len(self.away):
                self._join()
            elif not getattr(self, "_" + self.rng.choices(kinds, weights)[0])():
                self._message()  # nothing to edit, react to, ...: a message instead
        rows = self.rows
        rows.reactions = [(self.chat_id, m.row[_SEQ], emoji, user, at)
                          for m in self.reacted.values() for emoji, users in m.emoji.items()
                          for user, at in users.items()]
        rows.last_id = self.next_id - 1
        return rows

    def _take(self) -> tuple[int, int, datetime]:
        self.seq += 1
        self.next_id += 1
        self.clock += timedelta(milliseconds=self.rng.randint(1, 20_000))
        return self.seq, self.next_id - 1, self.clock

    def _event(self, kind: str, user: int, target: int | None = None,
               body: str | None = None, fields: dict[str, Any] | None = None) -> list[Any]:
        seq, event_id, now = self._take()
        if kind == "edit":
            fields = {"edited_at": iso(now)}
        row = [event_id, self.chat_id, seq, kind, user, target, body,
               encode(fields or {}).decode(), now]
        self.rows.events.append(row)
        self.rows.kinds[kind] += 1
        return row

    def _live(self, wanted: Callable[[_Message], bool] = lambda m: True) -> _Message | None:
        """A recent message not deleted, and ``wanted`` (a few tries, else None)."""
        for _ in range(12):
            if not self.recent:
                return None
            message = self.recent[self.rng.randrange(len(self.recent))]
            if not message.row[_DELETED] and wanted(message):
                return message
        return None

    def _member(self) -> int:
        return self.rng.choice(sorted(self.members))

    def _message(self) -> bool:
        seq, message_id, now = self._take()
        reply = None
        if self.recent and self.rng.random() < 0.1:
            reply = self.recent[self.rng.randrange(len(self.recent))].row[_SEQ]
        words = " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(1, 8)))
        row = [message_id, self.chat_id, seq, self._member(), f"{seq}: {words}", None, now,
               reply, None, False]
        self.rows.messages.append(row)
        self.rows.kinds["message"] += 1
        self.rows.last_at = now
        self.recent.append(_Message(row))
        return True

    def _edit(self) -> bool:
        message = self._live(lambda m: m.row[_AUTHOR] in self.members)
        if message is None:
            return False
        text = f"{message.row[_BODY]} (edited)"
        row = self._event("edit", message.row[_AUTHOR], message.row[_SEQ], text)
        message.row[_BODY] = text
        message.row[_EDITED] = row[8]
        message.edits.append(row)
        return True

    def _react(self) -> bool:
        message = self._live()
        if message is None:
            return False
        emoji = self.rng.choice(EMOJI)
        user = self._member()
        users = message.emoji.get(emoji, {})
        if user in users:  # the daemon would store nothing: take it back instead
            return self._take_back(message, emoji, user)
        self.reacted[message.row[_SEQ]] = message
        users = message.emoji.setdefault(emoji, {})
        row = self._event("react", user, message.row[_SEQ], None,
                          {"emoji": emoji, "count": len(users) + 1})
        users[user] = row[8]
        return True

    def _unreact(self) -> bool:
        message = self._live(lambda m: bool(m.emoji))
        if message is None:
            return False
        emoji = self.rng.choice(sorted(message.emoji))
        here = [user for user in message.emoji[emoji] if user in self.members]
        return bool(here) and self._take_back(message, emoji, self.rng.choice(here))

    def _take_back(self, message: _Message, emoji: str, user: int) -> bool:
        users = message.emoji[emoji]
        del users[user]
        if not users:
            del message.emoji[emoji]
        self._event("unreact", user, message.row[_SEQ], None,
                    {"emoji": emoji, "count": len(users)})
        return True

    def _delete(self) -> bool:
        message = self._live()
        if message is None:
            return False
        author = message.row[_AUTHOR]
        self._event("delete", author if author in self.members else self.owner,
                    message.row[_SEQ])
        message.row[_BODY] = ""
        message.row[_DELETED] = True
        for edit in message.edits:
            edit[6] = ""  # a delete erases the edits' texts too
        message.emoji.clear()
        return True

    def _join_leave(self) -> bool:
        if self.away and (self.rng.random() < 0.5 or len(self.members) <= 2):
            return self._join()
        if len(self.members) <= 2:
            return False
        user = self.rng.choice([u for u in self.churners if u in self.members])
        self.members.discard(user)
        self.away.append(user)
        self._event("leave", user)
        return True

    def _join(self) -> bool:
        user = self.away.pop(self.rng.randrange(len(self.away)))
        self.members.add(user)
        row = self._event("join", user)
        self.rows.rejoined[user] = (row[8], row[2])  # a joiner has read up to the join
        return True
