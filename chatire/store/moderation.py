"""The store's side of roles, invites, removals and bans, direct chats and deleting a chat.

What can race is decided here, under row locks and constraints: the last use of an
invite (one UPDATE that takes it), the one direct chat of a pair (a unique index), the
order of a chat's events (the chat row's lock, via append_event).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chatire.errors import Forbidden, NotFound
from chatire.model import Chat, Event, Invite, User
from chatire.store.cursor import Cursor
from chatire.store.events import append_event
from chatire.store.queries import get_chat


async def is_banned(cur: Cursor, chat_id: int, user_id: int) -> bool:
    await cur.execute("SELECT 1 FROM bans WHERE chat_id = %s AND user_id = %s",
                      (chat_id, user_id))
    return cur.fetchone() is not None


async def join(cur: Cursor, chat: Chat, user: User, now: datetime) -> Event | None:
    """Make the user a member (not if banned); the join event, or None if one already."""
    if await is_banned(cur, chat.id, user.id):
        raise Forbidden("you are banned from this chat")
    await cur.execute(
        """INSERT INTO members (chat_id, user_id, joined_at) VALUES (%s, %s, %s)
           ON CONFLICT DO NOTHING RETURNING 1""",
        (chat.id, user.id, now),
    )
    if cur.fetchone() is None:
        return None
    joined = await append_event(cur, chat, "join", user, now)
    # A new member has read everything up to their own join.
    await cur.execute("UPDATE members SET read_seq = %s WHERE chat_id = %s AND user_id = %s",
                      (joined.seq, chat.id, user.id))
    return joined


async def leave(cur: Cursor, chat: Chat, user: User,
                now: datetime) -> tuple[list[Event], bool]:
    """End a membership: the events it made (leave, and the new owner's role when the
    owner left) and whether the chat was deleted (a group chat's last member left)."""
    await cur.execute("DELETE FROM members WHERE chat_id = %s AND user_id = %s RETURNING role",
                      (chat.id, user.id))
    row = cur.fetchone()
    if row is None:
        return [], False
    events = [await append_event(cur, chat, "leave", user, now)]
    await cur.execute(
        """SELECT u.id, u.username, u.display_name FROM members m
           JOIN users u ON u.id = m.user_id WHERE m.chat_id = %s
           ORDER BY CASE m.role WHEN 'admin' THEN 0 ELSE 1 END, m.joined_at, u.id LIMIT 1""",
        (chat.id,),
    )
    heir = cur.fetchone()
    if heir is None:
        if chat.kind == "group":
            await delete_chat(cur, chat)
            return events, True
        return events, False
    if row[0] == "owner":
        successor = User(int(heir[0]), heir[1], heir[2])
        events.append(await _give_role(cur, chat, user, successor, "owner", now))
    return events, False


async def _give_role(cur: Cursor, chat: Chat, actor: User, subject: User, role: str,
                     now: datetime) -> Event:
    await cur.execute("UPDATE members SET role = %s WHERE chat_id = %s AND user_id = %s",
                      (role, chat.id, subject.id))
    if role == "owner":
        await cur.execute("UPDATE chats SET owner_id = %s WHERE id = %s", (subject.id, chat.id))
    return await append_event(cur, chat, "role", actor, now,
                              fields={"subject": subject.to_json(), "role": role})


async def set_role(cur: Cursor, chat: Chat, actor: User, subject: User, role: str,
                   now: datetime) -> list[Event]:
    """Give a member a role; ``owner`` hands the chat over (the old owner becomes admin)."""
    await cur.execute("SELECT role FROM members WHERE chat_id = %s AND user_id = %s",
                      (chat.id, subject.id))
    row = cur.fetchone()
    if row is None:
        raise NotFound("that user is not a member of this chat")
    if row[0] == role:
        return []
    events = [await _give_role(cur, chat, actor, subject, role, now)]
    if role == "owner":
        events.append(await _give_role(cur, chat, actor, actor, "admin", now))
    return events


async def remove(cur: Cursor, chat: Chat, actor: User, subject: User, ban: bool,
                 now: datetime) -> Event | None:
    """Put a member out (and, with ``ban``, keep them out); the remove event, or None when
    that changed nothing."""
    await cur.execute("DELETE FROM members WHERE chat_id = %s AND user_id = %s RETURNING 1",
                      (chat.id, subject.id))
    removed = cur.fetchone() is not None
    banned = False
    if ban:
        await cur.execute("""INSERT INTO bans (chat_id, user_id, created_at) VALUES (%s, %s, %s)
                             ON CONFLICT DO NOTHING RETURNING 1""", (chat.id, subject.id, now))
        banned = cur.fetchone() is not None
    if not (removed or banned):
        return None
    return await append_event(cur, chat, "remove", actor, now,
                              fields={"subject": subject.to_json(), "ban": ban})


async def unban(cur: Cursor, chat_id: int, user_id: int) -> bool:
    await cur.execute("DELETE FROM bans WHERE chat_id = %s AND user_id = %s RETURNING 1",
                      (chat_id, user_id))
    return cur.fetchone() is not None


async def change(cur: Cursor, chat: Chat, actor: User, title: str | None, join_by: str | None,
                 now: datetime) -> tuple[Chat, list[Event]]:
    """Rename a chat and/or change who may join; an event for each change made."""
    events: list[Event] = []
    if title is not None and title != chat.title:
        await cur.execute("UPDATE chats SET title = %s WHERE id = %s", (title, chat.id))
        events.append(await append_event(cur, chat, "rename", actor, now,
                                         fields={"title": title}))
    if join_by is not None and join_by != chat.join:
        await cur.execute("UPDATE chats SET join_by = %s WHERE id = %s", (join_by, chat.id))
        events.append(await append_event(cur, chat, "settings", actor, now,
                                         fields={"join": join_by}))
    fresh = await get_chat(cur, chat.uri)
    assert fresh is not None
    return fresh, events


async def delete_chat(cur: Cursor, chat: Chat) -> None:
    """Delete a chat and, with it, every message, event, reaction, invite and member."""
    await cur.execute("DELETE FROM chats WHERE id = %s", (chat.id,))


_INVITE_COLUMNS = """i.code, i.expires_at, i.uses_left, i.created_at,
    u.id, u.username, u.display_name"""


def _invite(cur: Cursor, uri: str, row: tuple[Any, ...]) -> Invite:
    code, expires, uses, created, *by = row
    return Invite(code, uri, None if expires is None else cur.time(expires),
                  None if uses is None else int(uses), User(int(by[0]), by[1], by[2]),
                  cur.time(created))


async def create_invite(cur: Cursor, chat: Chat, user: User, code: str,
                        expires_at: datetime | None, uses: int | None,
                        now: datetime) -> Invite:
    await cur.execute(
        """INSERT INTO invites (code, chat_id, created_by, created_at, expires_at, uses_left)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (code, chat.id, user.id, now, expires_at, uses),
    )
    return Invite(code, chat.uri, expires_at, uses, user, now)


async def invites(cur: Cursor, chat: Chat, now: datetime) -> list[Invite]:
    """The invites of a chat that still let someone in, newest first."""
    await cur.execute(
        f"""SELECT {_INVITE_COLUMNS} FROM invites i JOIN users u ON u.id = i.created_by
            WHERE i.chat_id = %s AND NOT i.revoked
              AND (i.expires_at IS NULL OR i.expires_at > %s)
              AND (i.uses_left IS NULL OR i.uses_left > 0)
            ORDER BY i.created_at DESC""",
        (chat.id, now),
    )
    return [_invite(cur, chat.uri, row) for row in cur.fetchall()]


async def revoke_invite(cur: Cursor, chat: Chat, code: str) -> bool:
    await cur.execute("""UPDATE invites SET revoked = TRUE
                         WHERE code = %s AND chat_id = %s AND NOT revoked RETURNING 1""",
                      (code, chat.id))
    return cur.fetchone() is not None


async def invite_chat(cur: Cursor, code: str, now: datetime) -> tuple[Chat, User] | None:
    """The chat a live invite lets one into and who made the invite, or None (unknown,
    expired, used up, revoked)."""
    await cur.execute(
        """SELECT c.uri, u.id, u.username, u.display_name FROM invites i
           JOIN chats c ON c.id = i.chat_id JOIN users u ON u.id = i.created_by
           WHERE i.code = %s AND NOT i.revoked
             AND (i.expires_at IS NULL OR i.expires_at > %s)
             AND (i.uses_left IS NULL OR i.uses_left > 0)""",
        (code, now),
    )
    row = cur.fetchone()
    if row is None:
        return None
    chat = await get_chat(cur, row[0])
    assert chat is not None
    return chat, User(int(row[1]), row[2], row[3])


async def use_invite(cur: Cursor, code: str, user: User,
                     now: datetime) -> tuple[Chat, Event | None]:
    """Join through an invite; a member joins for free, anyone else takes one use (one
    UPDATE under the invite row's lock: two users racing for the last use, one wins)."""
    found = await invite_chat(cur, code, now)
    if found is None:
        raise NotFound("no such invite")
    chat = found[0]
    await cur.execute("SELECT 1 FROM members WHERE chat_id = %s AND user_id = %s",
                      (chat.id, user.id))
    if cur.fetchone() is not None:
        return chat, None
    if await is_banned(cur, chat.id, user.id):
        raise Forbidden("you are banned from this chat")
    await cur.execute(
        """UPDATE invites SET uses_left = uses_left - 1
           WHERE code = %s AND NOT revoked AND (expires_at IS NULL OR expires_at > %s)
             AND (uses_left IS NULL OR uses_left > 0) RETURNING 1""",
        (code, now),
    )
    if cur.fetchone() is None:
        raise NotFound("no such invite")
    return chat, await join(cur, chat, user, now)


async def direct_chat(cur: Cursor, uri: str, me: User, other: User,
                      now: datetime) -> tuple[Chat, bool]:
    """The one direct chat of two users, made if new (True) — the unique pair decides a
    race: the loser of two at once finds the winner's chat."""
    pair = f"{min(me.id, other.id)}:{max(me.id, other.id)}"
    await cur.execute(
        """INSERT INTO chats (uri, title, owner_id, created_at, last_activity_at, kind, pair)
           VALUES (%s, '', %s, %s, %s, 'direct', %s) ON CONFLICT DO NOTHING RETURNING id""",
        (uri, me.id, now, now, pair),
    )
    row = cur.fetchone()
    if row is not None:
        await cur.execute(
            """INSERT INTO members (chat_id, user_id, joined_at) VALUES (%s, %s, %s),
               (%s, %s, %s)""",
            (row[0], me.id, now, row[0], other.id, now),
        )
    await cur.execute("SELECT uri FROM chats WHERE pair = %s", (pair,))
    found = cur.fetchone()
    assert found is not None
    chat = await get_chat(cur, found[0])
    assert chat is not None
    return chat, row is not None
