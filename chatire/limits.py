"""The protocol's fixed limits, defined once, and the public configuration a client reads."""

from __future__ import annotations

from typing import Any

from chatire.config import Config

#: The protocol version this daemon speaks (``GET /api/config``).
PROTOCOL_VERSION = 2

#: A username: 1 to this many of ``[A-Za-z0-9_.-]``; a display name at most this long.
MAX_USERNAME_CHARS = 150
MAX_DISPLAY_NAME_CHARS = 150
#: A new password: this many characters at least, and at most.
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
#: The longest chat title, in characters, after stripping.
MAX_TITLE_CHARS = 200
#: ``limit`` of ``GET /api/chats/{uri}/messages``: its default and its largest value.
DEFAULT_HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 200
#: ``limit`` of ``GET /api/chats``: its default and its largest value.
DEFAULT_CHAT_PAGE = 100
MAX_CHAT_PAGE = 500
#: The longest ``client_id``, in characters.
MAX_CLIENT_ID_CHARS = 128
#: ``limit`` of ``GET /api/chats/{uri}/events``: its default and its largest value.
DEFAULT_EVENTS_LIMIT = 100
MAX_EVENTS_LIMIT = 500
#: The largest seq a request may name (a 64-bit signed integer, as the stores keep it).
MAX_SEQ = 2**63 - 1
#: An invite's longest lifetime (``expires_in``) and most uses (``max_uses``).
MAX_INVITE_SECONDS = 365 * 24 * 3600
MAX_INVITE_USES = 100_000
#: The longest reaction emoji, in characters.
MAX_EMOJI_CHARS = 32


def public_config(config: Config) -> dict[str, Any]:
    """The body of ``GET /api/config``: the limits this daemon applies now."""
    return {
        "protocol": PROTOCOL_VERSION,
        "limits": {
            "message_chars": config.max_message_chars,
            "title_chars": MAX_TITLE_CHARS,
            "body_bytes": config.max_body_bytes,
            "frame_bytes": config.max_frame_bytes,
            "send_rate": config.send_rate,
            "send_burst": config.send_burst,
        },
    }
