"""The notification transactions: settings, the roster of a chat, and the due rows' life."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from chatire.model import Chat, Message, User
from chatire.notify.due import Claimed, Delivery, Roster, RosterEntry
from chatire.notify.mentions import mentions
from chatire.notify.payload import SHOWN, Compose
from chatire.notify.settings import NotifySettings, Webhook
from chatire.store.cursor import Cursor
from chatire.store.queries import MESSAGE_COLUMNS, MESSAGE_FROM, message_row

#: The most messages one notification reads to pick its due ones from; past it the
#: notification says "more" by count alone.
READ_AT_MOST = 500

_SETTINGS_COLUMNS = "s.level, s.delay, s.webhook_url, s.webhook_secret, s.email"


def _settings(row: tuple[Any, ...]) -> NotifySettings:
    level, delay, url, secret, email = row
    return NotifySettings(level, int(delay), None if url is None else Webhook(url, secret),
                          email)


async def notify_settings(cur: Cursor, user_id: int) -> NotifySettings:
    await cur.execute(f"SELECT {_SETTINGS_COLUMNS} FROM notify_settings s WHERE s.user_id = %s",
                      (user_id,), alone=True)
    row = cur.fetchone()
    return NotifySettings() if row is None else _settings(row)


async def save_notify_settings(cur: Cursor, user_id: int, settings: NotifySettings) -> None:
    hook = settings.webhook
    await cur.execute(
        """INSERT INTO notify_settings (user_id, level, delay, webhook_url, webhook_secret, email)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (user_id) DO UPDATE SET level = excluded.level, delay = excluded.delay,
               webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret,
               email = excluded.email""",
        (user_id, settings.level, settings.delay, None if hook is None else hook.url,
         None if hook is None else hook.secret, settings.email), alone=True)


async def chat_level(cur: Cursor, chat_id: int, user_id: int) -> tuple[bool, str | None]:
    """Whether the user is a member, and their level for the chat (None: their default)."""
    await cur.execute("SELECT notify FROM members WHERE chat_id = %s AND user_id = %s",
                      (chat_id, user_id), alone=True)
    row = cur.fetchone()
    return (False, None) if row is None else (True, row[0])


async def set_chat_level(cur: Cursor, chat_id: int, user_id: int, level: str | None) -> bool:
    """Set a member's level for one chat; whether they are a member."""
    await cur.execute(
        "UPDATE members SET notify = %s WHERE chat_id = %s AND user_id = %s RETURNING user_id",
        (level, chat_id, user_id), alone=True)
    return cur.fetchone() is not None


async def roster(cur: Cursor, chat_uri: str) -> Roster | None:
    """The chat's members who have a channel and a level other than none (None: no chat)."""
    await cur.execute("SELECT id FROM chats WHERE uri = %s", (chat_uri,))
    chat = cur.fetchone()
    if chat is None:
        return None
    await cur.execute(
        """SELECT m.user_id, u.username, coalesce(m.notify, s.level), s.delay
             FROM members m
             JOIN notify_settings s ON s.user_id = m.user_id
             JOIN users u ON u.id = m.user_id
            WHERE m.chat_id = %s AND coalesce(m.notify, s.level) <> 'none'
              AND (s.webhook_url IS NOT NULL OR s.email IS NOT NULL)""",
        (chat[0],))
    return Roster(int(chat[0]), tuple(RosterEntry(int(r[0]), r[1], r[2], int(r[3]))
                                      for r in cur.fetchall()))


async def add_due(cur: Cursor, chat_id: int, rows: list[tuple[str, int, int, datetime]],
                  now: datetime) -> None:
    """Open a burst for each (nid, user id, first seq, due at) that has none open yet."""
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for nid, user_id, first_seq, due_at in rows:
        params += [nid, user_id, chat_id, first_seq, now, due_at]
    await cur.execute(
        f"""INSERT INTO notify_due (nid, user_id, chat_id, first_seq, created_at, due_at)
            VALUES {values} ON CONFLICT DO NOTHING""", params, alone=True)


async def claim_due(cur: Cursor, now: datetime, hold_until: datetime,
                    limit: int) -> list[Claimed]:
    """Take up to ``limit`` rows that are due and not held by another daemon, holding them
    until ``hold_until`` (a daemon that dies holding one lets it go then)."""
    skip = " FOR UPDATE SKIP LOCKED" if cur.dialect == "postgresql" else ""
    await cur.execute(
        f"""UPDATE notify_due SET due_at = %s WHERE id IN (
                SELECT id FROM notify_due WHERE due_at <= %s
                 ORDER BY due_at LIMIT %s{skip})
            RETURNING id""", (hold_until, now, limit))
    ids = [int(row[0]) for row in cur.fetchall()]
    if not ids:
        return []
    marks = ", ".join(["%s"] * len(ids))
    await cur.execute(
        f"""SELECT d.id, d.user_id, c.uri FROM notify_due d JOIN chats c ON c.id = d.chat_id
             WHERE d.id IN ({marks}) ORDER BY d.id""", ids)
    return [Claimed(int(r[0]), int(r[1]), r[2]) for r in cur.fetchall()]


@attrs.frozen
class _Pending:
    """A claimed row whose content is not fixed yet: whose, where, from which seq."""

    due_id: int
    nid: str
    user: User
    chat: Chat
    level: str
    first: int


async def prepare_due(cur: Cursor, claims: list[tuple[int, bool]],
                      compose: Compose) -> list[Delivery]:
    """The notifications of claimed rows, given as (row id, whether its member is online),
    in one transaction, each one's content fixed on its first attempt (the messages read
    once per chat, the contents written in one statement). A row with nothing due any
    more (read, online, muted, unreachable, no longer a member) is deleted and left out."""
    if not claims:
        return []
    online = dict(claims)
    marks = ", ".join(["%s"] * len(online))
    lock = " FOR UPDATE OF d" if cur.dialect == "postgresql" else ""
    await cur.execute(
        f"""SELECT d.id, d.nid, d.first_seq, d.created_at, d.attempts, d.payload, d.sent,
                   u.id, u.username, u.display_name, m.read_seq, m.notify,
                   {_SETTINGS_COLUMNS}, c.id, c.uri, c.title, c.created_at, c.last_seq,
                   c.kind, c.join_by
              FROM notify_due d
              JOIN users u ON u.id = d.user_id
              JOIN chats c ON c.id = d.chat_id
              LEFT JOIN members m ON m.chat_id = d.chat_id AND m.user_id = d.user_id
              LEFT JOIN notify_settings s ON s.user_id = d.user_id
             WHERE d.id IN ({marks}) ORDER BY d.id{lock}""", list(online))
    deliveries: dict[int, Delivery] = {}
    pending: list[_Pending] = []
    gone: list[int] = []
    for row in cur.fetchall():
        due_id, nid, first_seq, created_at, attempts, payload, sent = row[:7]
        user = User(int(row[7]), row[8], row[9])
        read_seq, chat_notify = row[10], row[11]
        settings = NotifySettings() if row[12] is None else _settings(row[12:17])
        level = chat_notify or settings.level
        if (read_seq is None or level == "none" or not settings.reachable
                or (payload is None and online[int(due_id)])):
            gone.append(int(due_id))
            continue
        deliveries[int(due_id)] = Delivery(
            int(due_id), nid, payload or "", settings.webhook, settings.email,
            cur.time(created_at), int(attempts), frozenset(s for s in sent.split(",") if s))
        if payload is None:
            owner = User(0, "", "")  # not shown: a notification names the chat only
            chat = Chat(int(row[17]), row[18], row[19], owner, cur.time(row[20]),
                        int(row[21]), kind=row[22], join=row[23])
            pending.append(_Pending(int(due_id), nid, user, chat, level,
                                    max(int(first_seq), int(read_seq) + 1)))
    fixed: list[tuple[int, str]] = []
    for one, (due, more) in zip(pending, await _due_many(cur, pending), strict=True):
        if not due:
            gone.append(one.due_id)
            del deliveries[one.due_id]
            continue
        payload = compose(one.nid, one.user, one.chat, due, more)
        deliveries[one.due_id] = attrs.evolve(deliveries[one.due_id], payload=payload)
        fixed.append((one.due_id, payload))
    await _forget(cur, gone)
    if fixed:
        cases = " ".join(["WHEN %s THEN %s"] * len(fixed))
        marks = ", ".join(["%s"] * len(fixed))
        await cur.execute(
            f"UPDATE notify_due SET payload = CASE id {cases} END WHERE id IN ({marks})",
            [v for pair in fixed for v in pair] + [due_id for due_id, _ in fixed])
    return list(deliveries.values())


async def _due_many(cur: Cursor, pending: list[_Pending]) -> list[tuple[list[Message], int]]:
    """Each pending row's due messages and how many more (as _due_messages), the chat's
    messages read once for all its rows; a row those do not settle is read alone."""
    window = 2 * (READ_AT_MOST + 1)
    read: dict[int, tuple[list[tuple[Any, ...]], bool]] = {}
    for chat_id in {one.chat.id for one in pending}:
        first = min(one.first for one in pending if one.chat.id == chat_id)
        await cur.execute(
            f"""SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM}
                 WHERE m.chat_id = %s AND m.seq >= %s AND NOT m.deleted
                 ORDER BY m.seq LIMIT %s""", (chat_id, first, window))
        rows = cur.fetchall()
        read[chat_id] = rows, len(rows) < window
    out = []
    for one in pending:
        rows, complete = read[one.chat.id]
        mine = [r for r in rows if int(r[0]) >= one.first and int(r[5]) != one.user.id]
        if complete or len(mine) > READ_AT_MOST:
            out.append(await _pick(cur, one.chat, one.user, one.level, mine[:READ_AT_MOST + 1]))
        else:  # the member's own messages filled the window: read theirs alone
            out.append(await _due_messages(cur, one.chat, one.user, one.level, one.first))
    return out


async def _due_messages(cur: Cursor, chat: Chat, user: User, level: str,
                        first: int) -> tuple[list[Message], int]:
    """The member's due messages from a seq on (others', not deleted), at most
    SHOWN listed, and how many more there are."""
    await cur.execute(
        f"""SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM}
             WHERE m.chat_id = %s AND m.seq >= %s AND m.user_id <> %s AND NOT m.deleted
             ORDER BY m.seq LIMIT %s""", (chat.id, first, user.id, READ_AT_MOST + 1))
    return await _pick(cur, chat, user, level, cur.fetchall())


async def _pick(cur: Cursor, chat: Chat, user: User, level: str,
                rows: list[tuple[Any, ...]]) -> tuple[list[Message], int]:
    """From the member's first READ_AT_MOST + 1 due rows: at most SHOWN messages (those
    that mention them unless their level is all), and how many more there are."""
    beyond = len(rows) > READ_AT_MOST
    messages = [message_row(cur, chat.uri, r) for r in rows[:READ_AT_MOST]]
    if level != "all":
        messages = [m for m in messages if mentions(m.message, user.username)]
    extra = 0
    if beyond and level == "all":
        await cur.execute(
            """SELECT count(*) FROM messages m WHERE m.chat_id = %s AND m.seq > %s
                AND m.user_id <> %s AND NOT m.deleted""",
            (chat.id, messages[-1].seq, user.id))
        count = cur.fetchone()
        extra = 0 if count is None else int(count[0])
    return messages[:SHOWN], len(messages) - len(messages[:SHOWN]) + extra


async def _forget(cur: Cursor, due_ids: list[int], *, alone: bool = False) -> None:
    if due_ids:
        marks = ", ".join(["%s"] * len(due_ids))
        await cur.execute(f"DELETE FROM notify_due WHERE id IN ({marks})", due_ids,
                          alone=alone)


async def finish_due(cur: Cursor, due_ids: list[int]) -> None:
    """Notifications were delivered (or dropped): their rows go, in one statement."""
    await _forget(cur, due_ids, alone=True)


async def retry_due(cur: Cursor, due_id: int, at: datetime, sent: frozenset[str]) -> None:
    """A delivery failed: try again at ``at``, minding which channels already took it."""
    await cur.execute(
        "UPDATE notify_due SET due_at = %s, attempts = attempts + 1, sent = %s WHERE id = %s",
        (at, ",".join(sorted(sent)), due_id), alone=True)
