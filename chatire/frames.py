"""What goes on the wire and the bus: frame payloads and node-wide control events."""

from __future__ import annotations

from chatire.jsonin import encode
from chatire.model import Message

#: The bus channel of node-wide events (revoked tokens, ended memberships). The
#: ':' keeps it out of the names a chat can have (chatire.chats.CHAT_URI).
CONTROL = ":control"
#: The seq of an ephemeral event on a chat's channel (typing): never stored.
EPHEMERAL = 0


def message_payload(message: Message) -> bytes:
    """The frame of a message, as it goes on the bus and to every socket."""
    return encode({"type": "message", **message.to_json()})


def revoke_event(token_hashes: list[str]) -> bytes:
    """The control event that closes every socket of these tokens, on every node."""
    return encode({"kind": "revoke", "tokens": token_hashes})


def leave_event(chat_uri: str, user_id: int) -> bytes:
    """The control event that ends a user's subscriptions to a chat, on every node."""
    return encode({"kind": "leave", "chat": chat_uri, "user": user_id})
