"""Appending messages: the group commit's one transaction, for many posts and chats."""

from __future__ import annotations

from datetime import datetime

from chatire.errors import Forbidden
from chatire.model import Appended, Chat, Message, Post, User
from chatire.store.cursor import Cursor
from chatire.store.queries import MESSAGE_COLUMNS, MESSAGE_FROM, message_row


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
            f"""INSERT INTO messages (chat_id, seq, user_id, body, client_id, created_at,
                                     reply_to)
                VALUES {", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(fresh))}
                RETURNING chat_id, seq, id""",
            tuple(value for chat, seq, post in fresh for value in
                  (chat.id, seq, post.user_id, post.text, post.client_id, now, post.reply_to)),
        )
        ids = {(int(row[0]), int(row[1])): int(row[2]) for row in cur.fetchall()}
        messages = [Message(chat.uri, seq, ids[(chat.id, seq)],
                            authors[(chat.id, post.user_id)], post.text, post.client_id, now,
                            reply_to=post.reply_to)
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
        """SELECT * FROM chatire_append(%s::bigint[], %s::bigint[], %s::text[], %s::text[],
                                        %s::bigint[], %s)""",
        ([chat.id for chat, _ in flat], [post.user_id for _, post in flat],
         [post.text for _, post in flat], [post.client_id for _, post in flat],
         [post.reply_to for _, post in flat], now),
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
            (_, seq, message_id, created, body, client_id, at, username, display, reply,
             edited, deleted) = row
            author = User(post.user_id, username, display)
            message = Message(chat.uri, int(seq), int(message_id), author, body, client_id,
                              cur.time(at), reply_to=None if reply is None else int(reply),
                              edited_at=None if edited is None else cur.time(edited),
                              deleted=bool(deleted))
            out.append(Appended(message, created=bool(created)))
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
        f"""SELECT m.chat_id, {MESSAGE_COLUMNS} FROM {MESSAGE_FROM}
            WHERE (m.chat_id, m.user_id, m.client_id)
                  IN ({", ".join(["(%s, %s, %s)"] * len(keys))})""",
        tuple(value for key in keys for value in key),
    )
    found: dict[tuple[int, int, str], Message] = {}
    for row in cur.fetchall():
        message = message_row(cur, chats[int(row[0])].uri, row[1:])
        found[(int(row[0]), message.user.id, message.client_id or "")] = message
    return found
