"""The seq of a chat's timeline: taking the next one, and storing an event with it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chatire.jsonin import encode
from chatire.model import Chat, Event, User
from chatire.store.cursor import Cursor


async def take_seq(cur: Cursor, chat_id: int) -> int:
    """The chat's next seq, under the chat row's lock (held to the commit, so seq N+1
    is visible only after N). give_back_seq undoes it in the same transaction."""
    await cur.execute("UPDATE chats SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq",
                      (chat_id,))
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


async def give_back_seq(cur: Cursor, chat_id: int) -> None:
    """Return the seq take_seq took (the change turned out to be no change)."""
    await cur.execute("UPDATE chats SET last_seq = last_seq - 1 WHERE id = %s", (chat_id,))


async def new_id(cur: Cursor) -> int:
    """A fresh id from the messages' sequence: event and message ids never collide."""
    if cur.dialect == "postgresql":
        await cur.execute("SELECT nextval(pg_get_serial_sequence('messages', 'id'))")
    else:
        await cur.execute("""INSERT INTO sqlite_sequence (name, seq) SELECT 'messages', 0
                             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence
                                               WHERE name = 'messages')""")
        await cur.execute("""UPDATE sqlite_sequence
                             SET seq = max(seq, (SELECT coalesce(max(id), 0) FROM messages)) + 1
                             WHERE name = 'messages' RETURNING seq""")
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


async def append_event(cur: Cursor, chat: Chat, kind: str, user: User, now: datetime, *,
                       target: int | None = None, body: str | None = None,
                       fields: dict[str, Any] | None = None, seq: int | None = None,
                       event_id: int | None = None) -> Event:
    """Store one event with the chat's next seq (or ``seq``, taken already with take_seq)
    and a fresh id (or ``event_id``, drawn already from the messages' sequence)."""
    if seq is None:
        seq = await take_seq(cur, chat.id)
    if event_id is None:
        event_id = await new_id(cur)
    data = dict(fields or {})
    cur.queue(
        """INSERT INTO events (id, chat_id, seq, kind, user_id, target, body, data, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (event_id, chat.id, seq, kind, user.id, target, body, encode(data).decode(), now),
    )
    shown = ({"target": target} if target is not None else {}) | data
    if body is not None:
        shown["message"] = body
    return Event(chat.uri, seq, event_id, kind, user, now, shown)
