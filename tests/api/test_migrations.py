"""A database of the previous release, with messages in it, upgrades in place (both stores):
every message keeps its seq, members start read up to now, the owner is owner."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import pytest_twisted
from twisted.internet import reactor

from chatire.model import Post, User
from chatire.store import schema, store_from_url
from chatire.store.cursor import Cursor

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PREVIOUS_RELEASE = 3  # the schema version the release before the timeline ran


async def _old_data(cur: Cursor) -> None:
    """What the previous release wrote: two users, a chat, both members, three messages."""
    for name in ("owner", "guest"):
        await cur.execute("""INSERT INTO users (username, display_name, password_hash,
                             created_at) VALUES (%s, %s, 'x', %s)""", (name, name, NOW))
    await cur.execute("""INSERT INTO chats (uri, title, owner_id, created_at, last_seq,
                         last_activity_at) VALUES ('old-chat', 't', 1, %s, 3, %s)""", (NOW, NOW))
    for user_id in (1, 2):
        await cur.execute("INSERT INTO members (chat_id, user_id, joined_at) VALUES (1, %s, %s)",
                          (user_id, NOW))
    for seq, user_id in ((1, 1), (2, 2), (3, 1)):
        await cur.execute("""INSERT INTO messages (chat_id, seq, user_id, body, client_id,
                             created_at) VALUES (1, %s, %s, %s, %s, %s)""",
                          (seq, user_id, f"old {seq}", f"k{seq}", NOW))


@pytest_twisted.ensureDeferred
async def test_a_previous_release_database_upgrades_in_place(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:PREVIOUS_RELEASE])
        old = store_from_url(db_url, reactor)
        await old.start()
        await old.engine.run(_old_data)
        await old.stop()
    store = store_from_url(db_url, reactor)
    await store.start()  # migrates to the current version
    chat = await store.get_chat("old-chat")
    assert chat is not None and chat.last_seq == 3
    page = await store.events(chat, 0, 100)
    assert [(item.seq, getattr(item, "message", None)) for item in page.items] == [
        (1, "old 1"), (2, "old 2"), (3, "old 3")]
    members = await store.members(chat.id)
    assert [(m.user.username, m.role, m.read_seq) for m in members] == [
        ("owner", "owner", 3), ("guest", "member", 3)]
    # The upgraded chat goes on: the next message is seq 4, an old client_id is still known.
    owner = User(1, "owner", "owner")
    appended = await store.append_messages(chat, [Post(1, "new", None, reply_to=2),
                                                  Post(1, "retry", "k1")], NOW)
    assert [(a.message.seq, a.created) for a in appended] == [(4, True), (1, False)]
    edit = await store.edit_message(chat, 2, owner, "edited", NOW)
    assert edit.seq == 5 and edit.id > appended[0].message.id  # ids never collide
    if store.dialect == "postgresql":
        # The previous release's append function is still there for a rolling upgrade.
        async def old_append(cur: Cursor) -> int:
            await cur.execute("""SELECT r_seq FROM chatire_append(ARRAY[1]::bigint[],
                                 ARRAY[2]::bigint[], ARRAY['from an old daemon'], ARRAY[NULL],
                                 now())""")
            row = cur.fetchone()
            assert row is not None
            return int(row[0])

        assert await store.engine.run(old_append) == 6
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_the_notifications_release_database_gets_the_changed_stamp(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 9 on a database of the release before it: the first sweep (a full
    check) reads every chat, then a post, even through the previous release's
    ``chatire_append``, is found by the sweep after it, and only that chat."""
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:8])
        old = store_from_url(db_url, reactor)
        await old.start()
        await old.engine.run(_old_data)
        await old.engine.run(_second_chat)
        await old.stop()
    store = store_from_url(db_url, reactor)
    await store.start()
    try:
        mark, seqs = await store.changed_chats(None, ["old-chat", "other-chat"])
        assert seqs == {"old-chat": 3, "other-chat": 0}
        mark, seqs = await store.changed_chats(mark, [])
        assert "old-chat" not in seqs  # the stamps start at 0
        if store.dialect == "postgresql":
            async def old_append(cur: Cursor) -> None:
                await cur.execute("""SELECT r_seq FROM chatire_append(ARRAY[1]::bigint[],
                                     ARRAY[2]::bigint[], ARRAY['old daemon'], ARRAY[NULL],
                                     now())""")

            await store.engine.run(old_append)
        else:
            chat = await store.get_chat("old-chat")
            assert chat is not None
            await store.append_messages(chat, [Post(2, "new daemon", None)], NOW)
        mark, seqs = await store.changed_chats(mark, [])
        assert seqs.get("old-chat") == 4 and "other-chat" not in seqs
    finally:
        await store.stop()


async def _second_chat(cur: Cursor) -> None:
    await cur.execute("""INSERT INTO chats (uri, title, owner_id, created_at, last_seq,
                         last_activity_at) VALUES ('other-chat', 't', 1, %s, 0, %s)""",
                      (NOW, NOW))
