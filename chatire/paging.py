"""Cursors of keyset-paged lists: opaque, URL-safe text for a (time, id) position."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from chatire.errors import Invalid


def encode_cursor(key: tuple[datetime, int]) -> str:
    """The opaque cursor of a chat list position: its (last_activity_at, id) key."""
    at, chat_id = key
    text = f"{at.astimezone(UTC).isoformat(timespec='microseconds')}|{chat_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The key of a cursor from encode_cursor; Invalid for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, chat_id = text.partition("|")
        key = datetime.fromisoformat(at), int(chat_id)
    except ValueError:  # bad base64, UTF-8, time or number
        raise Invalid("cursor: not a cursor this server gave") from None
    if key[0].tzinfo is None or not 0 <= key[1] < 2**63:
        raise Invalid("cursor: not a cursor this server gave")
    return key
