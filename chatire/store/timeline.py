"""The timeline's transactions: history and events pages, edits, deletes, reactions, reads.

An edit, delete or reaction asked with a bearer token (an Ask) is ONE transaction, in the
style of Synapse's ``*_txn`` functions: the chat row is locked first (only for a member
with a live token), then the token, the chat, the asker's role and the message are read
in a statement of their own, so they are what it is under the lock (a removal or a delete
that won the lock refuses the change), and judged by the Ask's rules; then the change.
On PostgreSQL the lock and the read are one round trip and the change rides with the
COMMIT: two round trips for an edit or a delete, the chat row locked for one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

from chatire.errors import Conflict
from chatire.model import (
    Ask,
    Chat,
    Event,
    Item,
    Message,
    Page,
    Reaction,
    Standing,
    Timeline,
    User,
    iso,
)
from chatire.store.cursor import Cursor
from chatire.store.events import append_event, give_back_seq
from chatire.store.queries import (
    CHAT_COLUMNS,
    CHAT_WIDTH,
    MESSAGE_COLUMNS,
    MESSAGE_FROM,
    chat_row,
    message_row,
)

#: Judges a standing (raising a refusal), as an Ask's rules do.
Judge = Callable[[Standing | None], None]
#: The chat's seq taken under its row lock, and whether the message is deleted (None: no
#: such message): what _locked_state finds, or what an asked change read with its lock.
Locked = tuple[int, bool | None]

#: The reactors a message lists per emoji (the count is always exact): a hot message's
#: frame stays the same size however many react.
SHOWN_REACTORS = 10
#: The most different emoji one message takes.
MAX_EMOJI_KINDS = 20

_EVENT_COLUMNS = """e.seq, e.id, e.kind, e.target, e.body, e.data, e.created_at,
    u.id, u.username, u.display_name"""
_EVENT_FROM = "events e JOIN users u ON u.id = e.user_id"


def _event(cur: Cursor, uri: str, row: tuple[Any, ...]) -> Event:
    seq, event_id, kind, target, body, data, at, *user = row
    fields: dict[str, Any] = {} if target is None else {"target": int(target)}
    fields.update(json.loads(data))
    if body is not None:
        fields["message"] = body
    return Event(uri, int(seq), int(event_id), kind, User(int(user[0]), user[1], user[2]),
                 cur.time(at), fields)


async def _with_reactions(cur: Cursor, chat: Chat, messages: list[Message],
                          viewer: int | None) -> list[Message]:
    """The messages with their reactions: per emoji the count, the first SHOWN_REACTORS
    users and the viewer (whose own reactions an HTTP reply always shows)."""
    live = [m.seq for m in messages if not m.deleted]
    if not live:
        return messages
    await cur.execute(
        """SELECT target, emoji, user_id, n FROM (
               SELECT target, emoji, user_id,
                      row_number() OVER (PARTITION BY target, emoji
                                         ORDER BY created_at, user_id) AS rank,
                      count(*) OVER (PARTITION BY target, emoji) AS n,
                      min(created_at) OVER (PARTITION BY target, emoji) AS first
                 FROM reactions WHERE chat_id = %s AND target BETWEEN %s AND %s) r
           WHERE rank <= %s OR user_id = %s
           ORDER BY target, first, emoji, rank""",
        (chat.id, min(live), max(live), SHOWN_REACTORS, viewer if viewer is not None else -1),
    )
    found: dict[int, dict[str, tuple[int, list[int]]]] = {}
    for target, emoji, user_id, count in cur.fetchall():
        per = found.setdefault(int(target), {})
        per.setdefault(emoji, (int(count), []))[1].append(int(user_id))
    if not found:
        return messages
    return [m if m.seq not in found else attrs.evolve(m, reactions=tuple(
        Reaction(emoji, count, tuple(users)) for emoji, (count, users)
        in found[m.seq].items())) for m in messages]


async def history(cur: Cursor, chat: Chat, after: int | None, before: int | None,
                  limit: int, viewer: int | None = None) -> Page:
    """Messages only, in their current state: seq > after, or seq < before, or the latest."""
    if after is not None:
        await cur.execute(
            f"""SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM}
                WHERE m.chat_id = %s AND m.seq > %s ORDER BY m.seq LIMIT %s""",
            (chat.id, after, limit + 1),
        )
        rows = cur.fetchall()
        has_more = len(rows) > limit
        rows = rows[:limit]
    else:
        bound = before if before is not None else chat.last_seq + 1
        await cur.execute(
            f"""SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM}
                WHERE m.chat_id = %s AND m.seq < %s ORDER BY m.seq DESC LIMIT %s""",
            (chat.id, bound, limit + 1),
        )
        newest_first = cur.fetchall()
        has_more = len(newest_first) > limit
        rows = newest_first[:limit][::-1]
    messages = [message_row(cur, chat.uri, r) for r in rows]
    return Page(tuple(await _with_reactions(cur, chat, messages, viewer)), has_more)


async def events(cur: Cursor, chat: Chat, after: int, limit: int,
                 viewer: int | None = None) -> Timeline:
    """Every kind with seq > after, ascending: two index ranges merged, one page long
    (never the whole chat in memory, however long it is)."""
    await cur.execute(
        f"""SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM}
            WHERE m.chat_id = %s AND m.seq > %s ORDER BY m.seq LIMIT %s""",
        (chat.id, after, limit + 1),
    )
    messages = [message_row(cur, chat.uri, r) for r in cur.fetchall()]
    await cur.execute(
        f"""SELECT {_EVENT_COLUMNS} FROM {_EVENT_FROM}
            WHERE e.chat_id = %s AND e.seq > %s ORDER BY e.seq LIMIT %s""",
        (chat.id, after, limit + 1),
    )
    others: list[Item] = [_event(cur, chat.uri, r) for r in cur.fetchall()]
    items = sorted([*messages, *others], key=lambda item: item.seq)
    has_more = len(items) > limit
    items = items[:limit]
    shown = await _with_reactions(
        cur, chat, [item for item in items if isinstance(item, Message)], viewer)
    current = {message.seq: message for message in shown}
    return Timeline(tuple(current.get(item.seq, item) for item in items), has_more)


async def message_at(cur: Cursor, chat: Chat, seq: int) -> Message | None:
    """The message with this seq in its current state (no reactions), or None."""
    await cur.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM} WHERE m.chat_id = %s AND m.seq = %s",
        (chat.id, seq),
    )
    row = cur.fetchone()
    return None if row is None else message_row(cur, chat.uri, row)


async def _locked_state(cur: Cursor, chat: Chat, seq: int, user: User,
                        judge: Judge | None = None) -> tuple[int, bool | None]:
    """Take the chat's next seq (its row lock orders every change to the chat), and tell
    whether the message is deleted (None: no such message). With ``judge``, the user's
    standing as it is under the lock is judged too."""
    # The read is a statement of its own after the lock (on PostgreSQL, of the same
    # round trip): it sees what committed while the lock was awaited.
    cur.queue("UPDATE chats SET last_seq = last_seq + 1 WHERE id = %s", (chat.id,))
    await cur.execute(
        """SELECT x.deleted, x.user_id, m.role, c.last_seq FROM chats c
           LEFT JOIN messages x ON x.chat_id = c.id AND x.seq = %s
           LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = %s
           WHERE c.id = %s""",
        (seq, user.id, chat.id),
    )
    row = cur.fetchone()
    assert row is not None  # the chat row was just locked
    deleted, author, role, taken = row
    if judge is not None:
        judge(Standing(user, chat, role, None if author is None else int(author),
                       bool(deleted)))
    return int(taken), None if author is None else bool(deleted)


#: Whether the statement before took the chat's row lock (its UPDATE of last_seq), and
#: an id for the change's event (PostgreSQL draws it here, saving a round trip).
_LOCKED_AND_ID = {
    # The trigger of migration 9 stamps the row with the writing transaction's id.
    "postgresql": """c.changed = pg_current_xact_id_if_assigned()::text::bigint,
                     nextval(pg_get_serial_sequence('messages', 'id'))""",
    "sqlite": "changes() > 0, NULL",  # BEGIN IMMEDIATE: nobody else writes meanwhile
}


async def _standing(cur: Cursor, ask: Ask) -> tuple[Chat, User, Locked | None, int | None]:
    """Lock the chat's row (taking its next seq) if the token is a member's and live; read
    who asks, the chat, their role and the message after it (on PostgreSQL in the same
    round trip), judge them and count the change against the asker's rate. Also what was
    locked (None: not, if a join committed between the two statements) and the event's
    id, if drawn already."""
    cur.queue(
        """UPDATE chats SET last_seq = last_seq + 1
            WHERE uri = %s AND EXISTS (
                SELECT 1 FROM tokens t JOIN members m ON m.user_id = t.user_id
                 WHERE t.token_hash = %s AND t.expires_at > %s AND m.chat_id = chats.id)""",
        (ask.uri, ask.token_hash, ask.now),
    )
    await cur.execute(
        f"""SELECT u.id, u.username, u.display_name, {CHAT_COLUMNS},
                   m.role, x.user_id, x.deleted, c.last_seq, {_LOCKED_AND_ID[cur.dialect]}
            FROM tokens t JOIN users u ON u.id = t.user_id
            LEFT JOIN chats c ON c.uri = %s
            LEFT JOIN users o ON o.id = c.owner_id
            LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = u.id
            LEFT JOIN messages x ON x.chat_id = c.id AND x.seq = %s
            WHERE t.token_hash = %s AND t.expires_at > %s""",
        (ask.uri, ask.seq, ask.token_hash, ask.now),
    )
    row = cur.fetchone()
    if row is None:
        ask.judge(None)
        raise AssertionError("the judge let a dead token by")
    user = User(int(row[0]), row[1], row[2])
    chat = None if row[3] is None else chat_row(cur, row[3:3 + CHAT_WIDTH])
    role, author, deleted, taken, locked, event_id = row[3 + CHAT_WIDTH:]
    ask.judge(Standing(user, chat, role, None if author is None else int(author),
                       bool(deleted)))
    assert chat is not None, "the judge let a missing chat by"
    if ask.gate is not None:
        ask.gate(user)
    state = (int(taken), None if author is None else bool(deleted)) if locked else None
    return chat, user, state, None if event_id is None else int(event_id)


async def edit_message(cur: Cursor, chat: Chat, seq: int, user: User, text: str,
                       now: datetime, judge: Judge | None = None, locked: Locked | None = None,
                       event_id: int | None = None) -> Event:
    """Replace a message's text; Conflict if it was deleted meanwhile. ``locked``: the
    chat row is locked already (and this was read under the lock)."""
    taken, state = locked or await _locked_state(cur, chat, seq, user, judge)
    if state is not False:
        raise Conflict("the message was deleted")
    cur.queue(
        "UPDATE messages SET body = %s, edited_at = %s WHERE chat_id = %s AND seq = %s",
        (text, now, chat.id, seq),
    )
    return await append_event(cur, chat, "edit", user, now, target=seq, body=text,
                              fields={"edited_at": iso(now)}, seq=taken, event_id=event_id)


async def delete_message(cur: Cursor, chat: Chat, seq: int, user: User,
                         now: datetime, judge: Judge | None = None,
                         locked: Locked | None = None,
                         event_id: int | None = None) -> tuple[Event, bool]:
    """Erase a message's text and its edits' (gone, not hidden) and its reactions; the
    delete event and True, or the first delete event and False if it was deleted."""
    taken, state = locked or await _locked_state(cur, chat, seq, user, judge)
    if state is None:
        raise Conflict("no such message")  # ChatService looked first: it cannot vanish
    if state:
        await give_back_seq(cur, chat.id)
        await cur.execute(
            f"""SELECT {_EVENT_COLUMNS} FROM {_EVENT_FROM}
                WHERE e.chat_id = %s AND e.target = %s AND e.kind = 'delete'""",
            (chat.id, seq),
        )
        row = cur.fetchone()
        assert row is not None
        return _event(cur, chat.uri, row), False
    cur.queue(
        "UPDATE messages SET body = '', deleted = TRUE WHERE chat_id = %s AND seq = %s",
        (chat.id, seq),
    )
    cur.queue(
        "UPDATE events SET body = '' WHERE chat_id = %s AND target = %s AND kind = 'edit'",
        (chat.id, seq),
    )
    cur.queue("DELETE FROM reactions WHERE chat_id = %s AND target = %s", (chat.id, seq))
    event = await append_event(cur, chat, "delete", user, now, target=seq, seq=taken,
                               event_id=event_id)
    return event, True


async def react(cur: Cursor, chat: Chat, seq: int, user: User, emoji: str, on: bool,
                now: datetime, judge: Judge | None = None, locked: Locked | None = None,
                event_id: int | None = None) -> Event | None:
    """Add (``on``) or take back one user's emoji on a message; the event, or None when
    that changed nothing. Conflict on a deleted message or past MAX_EMOJI_KINDS."""
    taken, state = locked or await _locked_state(cur, chat, seq, user, judge)
    if state is None:
        raise Conflict("no such message")
    if state:
        raise Conflict("the message was deleted")
    if on:
        await cur.execute(
            """SELECT count(DISTINCT emoji), max(CASE WHEN emoji = %s THEN 1 ELSE 0 END)
               FROM reactions WHERE chat_id = %s AND target = %s""",
            (emoji, chat.id, seq),
        )
        kinds, present = cur.fetchone() or (0, 0)
        if not present and int(kinds or 0) >= MAX_EMOJI_KINDS:
            raise Conflict(f"a message takes at most {MAX_EMOJI_KINDS} different reactions")
        await cur.execute(
            """INSERT INTO reactions (chat_id, target, emoji, user_id, created_at)
               VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1""",
            (chat.id, seq, emoji, user.id, now),
        )
    else:
        await cur.execute(
            """DELETE FROM reactions WHERE chat_id = %s AND target = %s AND emoji = %s
               AND user_id = %s RETURNING 1""",
            (chat.id, seq, emoji, user.id),
        )
    if cur.fetchone() is None:
        await give_back_seq(cur, chat.id)
        return None
    await cur.execute(
        "SELECT count(*) FROM reactions WHERE chat_id = %s AND target = %s AND emoji = %s",
        (chat.id, seq, emoji),
    )
    row = cur.fetchone()
    count = int(row[0]) if row else 0
    return await append_event(cur, chat, "react" if on else "unreact", user, now,
                              target=seq, fields={"emoji": emoji, "count": count}, seq=taken,
                              event_id=event_id)


async def edit_asked(cur: Cursor, ask: Ask, text: str) -> Event:
    """edit_message asked with a token: the whole of it one transaction."""
    chat, user, locked, event_id = await _standing(cur, ask)
    return await edit_message(cur, chat, ask.seq, user, text, ask.now, ask.judge, locked,
                              event_id)


async def delete_asked(cur: Cursor, ask: Ask) -> tuple[Event, bool]:
    """delete_message asked with a token: the whole of it one transaction."""
    chat, user, locked, event_id = await _standing(cur, ask)
    return await delete_message(cur, chat, ask.seq, user, ask.now, ask.judge, locked,
                                event_id)


async def react_asked(cur: Cursor, ask: Ask, emoji: str, on: bool) -> Event | None:
    """react asked with a token: the whole of it one transaction."""
    chat, user, locked, event_id = await _standing(cur, ask)
    return await react(cur, chat, ask.seq, user, emoji, on, ask.now, ask.judge, locked,
                       event_id)


async def mark_read(cur: Cursor, marks: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Raise each (chat id, user id)'s read_seq to seq, capped at the chat's last_seq and
    never lowered; fire with (chat id, user id, read_seq now) of the members among them.

    PostgreSQL: one statement for them all (a window of 1,000 marks was 1,000 round trips,
    a second or more before anyone was told); SQLite runs in the process: one a mark."""
    if cur.dialect == "postgresql":
        # Two daemons' windows may raise the same rows (one user's devices on both): the
        # rows are locked in one order first, so two windows wait for each other, never
        # deadlock.
        ordered = sorted(marks)
        chats, users = [m[0] for m in ordered], [m[1] for m in ordered]
        await cur.execute(
            """SELECT 1 FROM members m
                WHERE (m.chat_id, m.user_id) IN (SELECT * FROM unnest(%s::bigint[], %s::bigint[]))
                ORDER BY m.chat_id, m.user_id FOR UPDATE OF m""", (chats, users))
        await cur.execute(
            """UPDATE members m SET read_seq = GREATEST(m.read_seq, LEAST(v.seq, c.last_seq))
                 FROM (SELECT chat_id, user_id, max(seq) AS seq
                         FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])
                              AS u (chat_id, user_id, seq)
                        GROUP BY chat_id, user_id) v
                 JOIN chats c ON c.id = v.chat_id
                WHERE m.chat_id = v.chat_id AND m.user_id = v.user_id
            RETURNING m.chat_id, m.user_id, m.read_seq""",
            (chats, users, [m[2] for m in ordered]),
        )
        return [(int(chat_id), int(user_id), int(seq))
                for chat_id, user_id, seq in cur.fetchall()]
    done: list[tuple[int, int, int]] = []
    for chat_id, user_id, seq in marks:
        await cur.execute(
            """UPDATE members SET read_seq = max(read_seq, min(%s,
                    (SELECT last_seq FROM chats WHERE id = members.chat_id)))
                WHERE chat_id = %s AND user_id = %s RETURNING read_seq""",
            (seq, chat_id, user_id),
        )
        row = cur.fetchone()
        if row is not None:
            done.append((chat_id, user_id, int(row[0])))
    return done

