"""Every transaction of the store, written once against the Cursor protocol."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from chatire.errors import Conflict, Forbidden
from chatire.model import Appended, Chat, ChatPage, LastMessage, Message, Page, Post, User
from chatire.store.cursor import Cursor

_CHAT_COLUMNS = """c.id, c.uri, c.title, c.created_at, c.last_seq,
    o.id, o.username, o.display_name"""
_CHAT_FROM = "chats c JOIN users o ON o.id = c.owner_id"
_MESSAGE_COLUMNS = """m.seq, m.id, m.body, m.client_id, m.created_at,
    u.id, u.username, u.display_name"""
_MESSAGE_FROM = "messages m JOIN users u ON u.id = m.user_id"


def _chat(cur: Cursor, row: tuple[Any, ...]) -> Chat:
    owner = User(row[5], row[6], row[7])
    return Chat(row[0], row[1], row[2], owner, cur.time(row[3]), int(row[4]))


def _message(cur: Cursor, uri: str, row: tuple[Any, ...]) -> Message:
    user = User(row[5], row[6], row[7])
    return Message(uri, int(row[0]), int(row[1]), user, row[2], row[3], cur.time(row[4]))


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
        "INSERT INTO members (chat_id, user_id, joined_at) VALUES (%s, %s, %s)",
        (row[0], owner_id, now),
    )
    chat = await get_chat(cur, uri)
    assert chat is not None
    return chat


async def get_chat(cur: Cursor, uri: str) -> Chat | None:
    await cur.execute(f"SELECT {_CHAT_COLUMNS} FROM {_CHAT_FROM} WHERE c.uri = %s", (uri,))
    row = cur.fetchone()
    return None if row is None else _chat(cur, row)


# The chat list's preview: the message whose seq is the chat's last_seq, and its author.
_LAST_COLUMNS = "lm.body, lm.created_at, lu.id, lu.username, lu.display_name"
_LAST_JOIN = """LEFT JOIN messages lm ON lm.chat_id = c.id AND lm.seq = c.last_seq
    LEFT JOIN users lu ON lu.id = lm.user_id"""


def _listed_chat(cur: Cursor, row: tuple[Any, ...]) -> Chat:
    """A row of _CHAT_COLUMNS then _LAST_COLUMNS: the chat with its last message."""
    chat = _chat(cur, row)
    body, created_at, *author = row[8:13]
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
        f"""SELECT {_CHAT_COLUMNS}, c.last_activity_at, {_LAST_COLUMNS} FROM {_CHAT_FROM}
            JOIN members me ON me.chat_id = c.id AND me.user_id = %s
            {_LAST_JOIN}
            {where}
            ORDER BY c.last_activity_at DESC, c.id DESC {page}""",
        tuple(params),
    )
    rows = cur.fetchall()
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    last = (cur.time(rows[-1][8]), int(rows[-1][0])) if more else None
    return ChatPage(tuple(_listed_chat(cur, row[:8] + row[9:]) for row in rows), last)


async def members(cur: Cursor, chat_id: int) -> list[User]:
    await cur.execute(
        """SELECT u.id, u.username, u.display_name FROM members m
           JOIN users u ON u.id = m.user_id WHERE m.chat_id = %s
           ORDER BY m.joined_at, u.id""",
        (chat_id,),
    )
    return [User(int(r[0]), r[1], r[2]) for r in cur.fetchall()]


async def is_member(cur: Cursor, chat_id: int, user_id: int) -> bool:
    await cur.execute("SELECT 1 FROM members WHERE chat_id = %s AND user_id = %s",
                      (chat_id, user_id))
    return cur.fetchone() is not None


async def add_member(cur: Cursor, chat_id: int, user_id: int, now: datetime) -> None:
    await cur.execute(
        """INSERT INTO members (chat_id, user_id, joined_at) VALUES (%s, %s, %s)
           ON CONFLICT DO NOTHING""",
        (chat_id, user_id, now),
    )


async def remove_member(cur: Cursor, chat_id: int, user_id: int) -> bool:
    await cur.execute("DELETE FROM members WHERE chat_id = %s AND user_id = %s RETURNING 1",
                      (chat_id, user_id))
    return cur.fetchone() is not None


async def append_messages(cur: Cursor, chat: Chat, posts: list[Post],
                          now: datetime) -> list[Appended | Forbidden]:
    """Append posts in order under the chat row's lock; one seq each, no gap."""
    return (await append_chats(cur, [(chat, posts)], now))[0]


async def append_chats(cur: Cursor, batches: list[tuple[Chat, list[Post]]],
                       now: datetime) -> list[list[Appended | Forbidden]]:
    """Append the posts of several chats in one transaction; per chat as append_messages.

    The transaction costs the same few statements whatever the number of chats
    and posts: the authors' memberships, the seq ranges (which take the chat rows'
    locks), the idempotency keys already stored (read under the locks, so a racing
    writer's are seen), one multi-row insert. On PostgreSQL the same steps run in
    the server as one statement (``chatire_append``), so a batch costs one round
    trip: the latency of a post is mostly round trips, not work.
    """
    if cur.dialect == "postgresql":
        return await _append_in_server(cur, batches, now)
    chats = {chat.id: chat for chat, _ in batches}
    pairs = sorted({(chat.id, post.user_id) for chat, posts in batches for post in posts})
    await cur.execute(
        f"""SELECT m.chat_id, u.id, u.username, u.display_name FROM members m
            JOIN users u ON u.id = m.user_id
            WHERE (m.chat_id, m.user_id) IN ({", ".join(["(%s, %s)"] * len(pairs))})""",
        tuple(value for pair in pairs for value in pair),
    )
    authors = {(int(r[0]), int(r[1])): User(int(r[1]), r[2], r[3]) for r in cur.fetchall()}
    allowed = {chat.id: sum((chat.id, post.user_id) in authors for post in posts)
               for chat, posts in batches}
    wanted = sorted(chat_id for chat_id, count in allowed.items() if count)
    top: dict[int, int] = {}
    if wanted:
        # The row lock on a chat orders concurrent writers: seq N+1 commits after N.
        await cur.execute(
            f"""UPDATE chats SET last_seq = last_seq + CASE id
                    {" ".join(["WHEN %s THEN %s"] * len(wanted))} END,
                    last_activity_at = %s
                WHERE id IN ({", ".join(["%s"] * len(wanted))}) RETURNING id, last_seq""",
            (*(value for chat_id in wanted for value in (chat_id, allowed[chat_id])), now,
             *wanted),
        )
        top = {int(r[0]): int(r[1]) for r in cur.fetchall()}
    stored = await _stored_keys(cur, chats, [(chat, post) for chat, posts in batches
                                             for post in posts
                                             if (chat.id, post.user_id) in authors])
    # Per post: a refusal, the message stored earlier, or (index into fresh, created).
    slots: list[list[Forbidden | Message | tuple[int, bool]]] = []
    fresh: list[tuple[Chat, int, Post]] = []
    first: dict[tuple[int, int, str], int] = {}
    used: dict[int, int] = dict.fromkeys(wanted, 0)
    for chat, posts in batches:
        mine: list[Forbidden | Message | tuple[int, bool]] = []
        slots.append(mine)
        for post in posts:
            if (chat.id, post.user_id) not in authors:
                mine.append(Forbidden("you are not a member of this chat"))
                continue
            if post.client_id is not None:
                key = (chat.id, post.user_id, post.client_id)
                if key in stored:
                    mine.append(stored[key])
                    continue
                if key in first:  # the same key twice in one batch: one message
                    mine.append((first[key], False))
                    continue
                first[key] = len(fresh)
            used[chat.id] += 1
            mine.append((len(fresh), True))
            fresh.append((chat, top[chat.id] - allowed[chat.id] + used[chat.id], post))
    for chat_id in wanted:
        if used[chat_id] < allowed[chat_id]:  # retries took no seq: give the unused back
            await cur.execute("UPDATE chats SET last_seq = %s WHERE id = %s",
                              (top[chat_id] - allowed[chat_id] + used[chat_id], chat_id))
    messages: list[Message] = []
    if fresh:
        await cur.execute(
            f"""INSERT INTO messages (chat_id, seq, user_id, body, client_id, created_at)
                VALUES {", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(fresh))}
                RETURNING chat_id, seq, id""",
            tuple(value for chat, seq, post in fresh for value in
                  (chat.id, seq, post.user_id, post.text, post.client_id, now)),
        )
        ids = {(int(row[0]), int(row[1])): int(row[2]) for row in cur.fetchall()}
        messages = [Message(chat.uri, seq, ids[(chat.id, seq)],
                            authors[(chat.id, post.user_id)], post.text, post.client_id, now)
                    for chat, seq, post in fresh]
    results: list[list[Appended | Forbidden]] = []
    for mine in slots:
        out: list[Appended | Forbidden] = []
        for slot in mine:
            if isinstance(slot, tuple):
                out.append(Appended(messages[slot[0]], created=slot[1]))
            elif isinstance(slot, Message):
                out.append(Appended(slot, created=False))
            else:
                out.append(slot)
        results.append(out)
    return results


async def _append_in_server(cur: Cursor, batches: list[tuple[Chat, list[Post]]],
                            now: datetime) -> list[list[Appended | Forbidden]]:
    """append_chats as one call of the server-side function (see chatire.store.schema)."""
    flat = [(chat, post) for chat, posts in batches for post in posts]
    await cur.execute(
        "SELECT * FROM chatire_append(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s)",
        ([chat.id for chat, _ in flat], [post.user_id for _, post in flat],
         [post.text for _, post in flat], [post.client_id for _, post in flat], now),
        alone=True,
    )
    rows = {int(row[0]): row for row in cur.fetchall()}
    results: list[list[Appended | Forbidden]] = []
    position = 0
    for chat, posts in batches:
        out: list[Appended | Forbidden] = []
        for post in posts:
            position += 1
            row = rows.get(position)
            if row is None:
                out.append(Forbidden("you are not a member of this chat"))
                continue
            _, seq, message_id, created, body, client_id, at, username, display = row
            author = User(post.user_id, username, display)
            out.append(Appended(Message(chat.uri, int(seq), int(message_id), author, body,
                                        client_id, cur.time(at)), created=bool(created)))
        results.append(out)
    return results


async def _stored_keys(cur: Cursor, chats: dict[int, Chat], posts: list[tuple[Chat, Post]],
                       ) -> dict[tuple[int, int, str], Message]:
    """The messages already stored under the posts' idempotency keys."""
    keys = sorted({(chat.id, post.user_id, post.client_id) for chat, post in posts
                   if post.client_id is not None})
    if not keys:
        return {}
    await cur.execute(
        f"""SELECT m.chat_id, {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM}
            WHERE (m.chat_id, m.user_id, m.client_id)
                  IN ({", ".join(["(%s, %s, %s)"] * len(keys))})""",
        tuple(value for key in keys for value in key),
    )
    found: dict[tuple[int, int, str], Message] = {}
    for row in cur.fetchall():
        message = _message(cur, chats[int(row[0])].uri, row[1:])
        found[(int(row[0]), message.user.id, message.client_id or "")] = message
    return found


async def history(cur: Cursor, chat: Chat, after: int | None, before: int | None,
                  limit: int) -> Page:
    if after is not None:
        await cur.execute(
            f"""SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM}
                WHERE m.chat_id = %s AND m.seq > %s ORDER BY m.seq LIMIT %s""",
            (chat.id, after, limit + 1),
        )
        rows = cur.fetchall()
    else:
        bound = before if before is not None else chat.last_seq + 1
        await cur.execute(
            f"""SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM}
                WHERE m.chat_id = %s AND m.seq < %s ORDER BY m.seq DESC LIMIT %s""",
            (chat.id, bound, limit + 1),
        )
        newest_first = cur.fetchall()
        has_more = len(newest_first) > limit
        rows = newest_first[:limit][::-1]
        return Page(tuple(_message(cur, chat.uri, r) for r in rows), has_more)
    has_more = len(rows) > limit
    return Page(tuple(_message(cur, chat.uri, r) for r in rows[:limit]), has_more)


async def last_seqs(cur: Cursor, uris: list[str]) -> dict[str, int]:
    if not uris:
        return {}
    marks = ", ".join(["%s"] * len(uris))
    await cur.execute(f"SELECT uri, last_seq FROM chats WHERE uri IN ({marks})", tuple(uris))
    return {row[0]: int(row[1]) for row in cur.fetchall()}


async def ping(cur: Cursor) -> None:
    await cur.execute("SELECT 1")
    cur.fetchone()
