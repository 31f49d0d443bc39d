"""A hot message: a thousand users react, yet its frame stays small (counts, not lists)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest_twisted
from twisted.internet import reactor

from chatire.frames import message_payload
from chatire.model import Post
from chatire.store import store_from_url
from chatire.store.timeline import SHOWN_REACTORS

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest_twisted.ensureDeferred
async def test_a_thousand_reactions_leave_the_message_frame_small(tmp_path: object) -> None:
    store = store_from_url(f"sqlite:///{tmp_path}/hot.db", reactor)
    await store.start()
    owner = await store.create_user("owner", "x", "owner", NOW)
    chat = await store.create_chat("hot-chat", "t", owner.id, NOW)
    (posted,) = await store.append_messages(chat, [Post(owner.id, "hot take", None)], NOW)
    seq = posted.message.seq
    quiet = len(message_payload(posted.message))
    fans = [await store.create_user(f"fan{i}", "x", f"fan {i}", NOW) for i in range(1000)]
    for i, fan in enumerate(fans):
        await store.add_member(chat, fan, NOW)
        event = await store.react(chat, seq, fan, ("\N{THUMBS UP SIGN}", "\N{FIRE}")[i % 2],
                                  True, NOW)
        assert event is not None
    page = await store.history(chat, seq - 1, None, 1, viewer=fans[-1].id)
    (message,) = page.messages
    assert [(r.count, len(r.users)) for r in message.reactions] == [
        (500, SHOWN_REACTORS), (500, SHOWN_REACTORS + 1)]  # the viewer is listed as well
    assert fans[-1].id in message.reactions[1].users
    shared = (await store.events(chat, seq - 1, 1)).items[0]  # no viewer: the socket's view
    frame = message_payload(shared)  # type: ignore[arg-type]
    assert len(frame) < quiet + 400, frame  # two emoji, 10 ids each: bounded
    await store.stop()
