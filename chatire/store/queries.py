"""Every transaction of the store, written once against the Cursor protocol."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from chatire.errors import Conflict
from chatire.model import (
    Chat,
    ChatPage,
    LastMessage,
    Member,
    Membership,
    Message,
    User,
)
from chatire.store.cursor import Cursor

CHAT_COLUMNS = """c.id, c.uri, c.title, c.created_at, c.last_seq,
    o.id, o.username, o.display_name, c.kind, c.join_by"""
CHAT_WIDTH = 10  # the number of CHAT_COLUMNS
CHAT_FROM = "chats c JOIN users o ON o.id = c.owner_id"
MESSAGE_COLUMNS = """m.seq, m.id, m.body, m.client_id, m.created_at,
    u.id, u.username, u.display_name, m.reply_to, m.edited_at, m.deleted"""
MESSAGE_FROM = "messages m JOIN users u ON u.id = m.user_id"


def chat_row(cur: Cursor, row: tuple[Any, ...]) -> Chat:
    owner = User(row[5], row[6], row[7])
    return Chat(row[0], row[1], row[2], owner, cur.time(row[3]), int(row[4]),
                kind=row[8], join=row[9])


def message_row(cur: Cursor, uri: str, row: tuple[Any, ...]) -> Message:
    """A row of MESSAGE_COLUMNS as a Message (reactions are added by the caller)."""
    user = User(row[5], row[6], row[7])
    return Message(uri, int(row[0]), int(row[1]), user, row[2], row[3], cur.time(row[4]),
                   reply_to=None if row[8] is None else int(row[8]),
                   edited_at=None if row[9] is None else cur.time(row[9]),
                   deleted=bool(row[10]))


async def create_user(cur: Cursor, username: str, password_hash: str, display_name: str,
                      now: datetime) -> User:
    await cur.execute(
        """INSERT INTO users (username, display_name, password_hash, created_at)
           VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id""",
        (username, display_name, password_hash, now),
    )
    row = cur.fetchone()
    if row is None:
        raise Conflict("that username is taken")
    return User(int(row[0]), username, display_name)


async def find_login(cur: Cursor, username: str) -> tuple[User, str] | None:
    await cur.execute(
        """SELECT id, username, display_name, password_hash FROM users
           WHERE lower(username) = lower(%s)""",
        (username,),
    )
    row = cur.fetchone()
    return None if row is None else (User(int(row[0]), row[1], row[2]), row[3])


async def set_password_hash(cur: Cursor, user_id: int, password_hash: str) -> None:
    await cur.execute("UPDATE users SET password_hash = %s WHERE id = %s",
                      (password_hash, user_id))


async def login_failures(cur: Cursor, subjects: list[str],
                         since: datetime) -> dict[str, tuple[int, datetime]]:
    marks = ", ".join(["%s"] * len(subjects))
    await cur.execute(
        f"""SELECT subject, count(*), min(at) FROM login_failures
            WHERE subject IN ({marks}) AND at > %s GROUP BY subject""",
        (*subjects, since), alone=True,
    )
    return {row[0]: (int(row[1]), cur.time(row[2])) for row in cur.fetchall()}


async def add_login_failures(cur: Cursor, subjects: list[str], now: datetime,
                             forget_before: datetime) -> None:
    await cur.execute("DELETE FROM login_failures WHERE at <= %s", (forget_before,))
    rows = ", ".join(["(%s, %s)"] * len(subjects))
    await cur.execute(f"INSERT INTO login_failures (subject, at) VALUES {rows}",
                      tuple(value for subject in subjects for value in (subject, now)))


async def add_token(cur: Cursor, user_id: int, token_hash: str, expires_at: datetime) -> None:
    await cur.execute(
        "INSERT INTO tokens (token_hash, user_id, expires_at) VALUES (%s, %s, %s)",
        (token_hash, user_id, expires_at),
    )


async def token_session(cur: Cursor, token_hash: str,
                        now: datetime) -> tuple[User, datetime] | None:
    await cur.execute(
        """SELECT u.id, u.username, u.display_name, t.expires_at FROM tokens t
           JOIN users u ON u.id = t.user_id
           WHERE t.token_hash = %s AND t.expires_at > %s""",
        (token_hash, now),
    )
    row = cur.fetchone()
    return None if row is None else (User(int(row[0]), row[1], row[2]), cur.time(row[3]))


async def delete_token(cur: Cursor, token_hash: str) -> None:
    await cur.execute("DELETE FROM tokens WHERE token_hash = %s", (token_hash,))


async def delete_user_tokens(cur: Cursor, user_id: int) -> list[str]:
    await cur.execute("DELETE FROM tokens WHERE user_id = %s RETURNING token_hash", (user_id,))
    return [row[0] for row in cur.fetchall()]


async def user_by_id(cur: Cursor, user_id: int) -> User | None:
    await cur.execute("SELECT id, username, display_name FROM users WHERE id = %s", (user_id,))
    row = cur.fetchone()
    return None if row is None else User(int(row[0]), row[1], row[2])


async def find_user(cur: Cursor, username: str) -> User | None:
    found = await find_login(cur, username)
    return None if found is None else found[0]


async def create_chat(cur: Cursor, uri: str, title: str, owner_id: int,
                      now: datetime) -> Chat:
    await cur.execute(
        """INSERT INTO chats (uri, title, owner_id, created_at, last_activity_at)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        (uri, title, owner_id, now, now),
    )
    row = cur.fetchone()
    assert row is not None
    await cur.execute(
        """INSERT INTO members (chat_id, user_id, joined_at, role)
           VALUES (%s, %s, %s, 'owner')""",
        (row[0], owner_id, now),
    )
    chat = await get_chat(cur, uri)
    assert chat is not None
    return chat


async def get_chat(cur: Cursor, uri: str) -> Chat | None:
    await cur.execute(f"SELECT {CHAT_COLUMNS} FROM {CHAT_FROM} WHERE c.uri = %s", (uri,))
    row = cur.fetchone()
    return None if row is None else chat_row(cur, row)


# The chat list's preview: the chat's latest message (other events are not shown), and
# its author; then the caller's role, read_seq and unread count (counted up to
# UNREAD_CAP in one index range a chat, so a long-unread chat costs no more).
_LAST_COLUMNS = """lm.body, lm.created_at, lu.id, lu.username, lu.display_name,
    me.role, me.read_seq,
    (SELECT count(*) FROM (SELECT 1 FROM messages x
        WHERE x.chat_id = c.id AND x.seq > me.read_seq AND x.user_id <> me.user_id
          AND NOT x.deleted LIMIT {cap}) unread)"""
_LAST_JOIN = """LEFT JOIN messages lm ON lm.chat_id = c.id
        AND lm.seq = (SELECT max(seq) FROM messages lx WHERE lx.chat_id = c.id)
    LEFT JOIN users lu ON lu.id = lm.user_id"""
#: The most unread messages GET /api/chats counts in one chat (it means "this or more").
UNREAD_CAP = 1000


def _listed_chat(cur: Cursor, row: tuple[Any, ...]) -> Chat:
    """A row of CHAT_COLUMNS then _LAST_COLUMNS: the chat with its last message."""
    chat = chat_row(cur, row)
    body, created_at, *author = row[CHAT_WIDTH:CHAT_WIDTH + 5]
    role, read_seq, unread = row[CHAT_WIDTH + 5:CHAT_WIDTH + 8]
    chat = attrs.evolve(chat, mine=Membership(role, int(read_seq), int(unread)))
    if author[0] is None:
        return chat
    last = LastMessage(User(int(author[0]), author[1], author[2]), body, cur.time(created_at))
    return attrs.evolve(chat, last_message=last)


async def list_chats(cur: Cursor, user_id: int, limit: int | None = None,
                     after: tuple[datetime, int] | None = None) -> ChatPage:
    """The user's chats, latest activity first, from just after the key ``after``.

    Keyset paging on (last_activity_at, id): no OFFSET, so a page costs the same
    wherever it starts, and a chat moving up between pages is not seen twice.
    """
    where = ""
    params: list[Any] = [user_id]
    if after is not None:
        where = """WHERE c.last_activity_at < %s
                      OR (c.last_activity_at = %s AND c.id < %s)"""
        params += [after[0], after[0], after[1]]
    page = ""
    if limit is not None:
        page = "LIMIT %s"
        params.append(limit + 1)
    await cur.execute(
        f"""SELECT {CHAT_COLUMNS}, c.last_activity_at,
                   {_LAST_COLUMNS.format(cap=UNREAD_CAP)} FROM {CHAT_FROM}
            JOIN members me ON me.chat_id = c.id AND me.user_id = %s
            {_LAST_JOIN}
            {where}
            ORDER BY c.last_activity_at DESC, c.id DESC {page}""",
        tuple(params),
    )
    rows = cur.fetchall()
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    last = (cur.time(rows[-1][CHAT_WIDTH]), int(rows[-1][0])) if more else None
    return ChatPage(tuple(_listed_chat(cur, row[:CHAT_WIDTH] + row[CHAT_WIDTH + 1:])
                          for row in rows), last)


async def members(cur: Cursor, chat_id: int) -> list[Member]:
    await cur.execute(
        """SELECT u.id, u.username, u.display_name, m.role, m.read_seq, u.last_seen
           FROM members m JOIN users u ON u.id = m.user_id WHERE m.chat_id = %s
           ORDER BY m.joined_at, u.id""",
        (chat_id,),
    )
    return [Member(User(int(r[0]), r[1], r[2]), r[3], int(r[4]),
                   last_seen=None if r[5] is None else cur.time(r[5]))
            for r in cur.fetchall()]


async def log_control(cur: Cursor, event: str, now: datetime) -> int:
    await cur.execute("INSERT INTO control_log (at, event) VALUES (%s, %s) RETURNING id",
                      (now, event), alone=True)
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


async def control_since(cur: Cursor, since: datetime) -> list[tuple[int, str]]:
    await cur.execute("SELECT id, event FROM control_log WHERE at > %s ORDER BY id",
                      (since,), alone=True)
    return [(int(row[0]), row[1]) for row in cur.fetchall()]


async def prune_control(cur: Cursor, before: datetime) -> None:
    await cur.execute("DELETE FROM control_log WHERE at < %s", (before,), alone=True)


async def touch_seen(cur: Cursor, user_ids: list[int], now: datetime) -> None:
    marks = ", ".join(["%s"] * len(user_ids))
    await cur.execute(f"UPDATE users SET last_seen = %s WHERE id IN ({marks})",
                      (now, *user_ids), alone=True)


async def membership(cur: Cursor, chat_id: int, user_id: int) -> str | None:
    """The user's role in the chat, or None if not a member."""
    await cur.execute("SELECT role FROM members WHERE chat_id = %s AND user_id = %s",
                      (chat_id, user_id))
    row = cur.fetchone()
    return None if row is None else str(row[0])


async def is_member(cur: Cursor, chat_id: int, user_id: int) -> bool:
    await cur.execute("SELECT 1 FROM members WHERE chat_id = %s AND user_id = %s",
                      (chat_id, user_id))
    return cur.fetchone() is not None


async def ping(cur: Cursor) -> None:
    await cur.execute("SELECT 1")
    cur.fetchone()
