"""What goes on the wire and the bus: frame payloads and node-wide control events."""

from __future__ import annotations

from chatire.jsonin import encode
from chatire.model import Event, Item, Message

#: The bus channel of node-wide events (revoked tokens, ended memberships). The
#: ':' keeps it out of the names a chat can have (chatire.chats.CHAT_URI).
CONTROL = ":control"
#: The seq of an ephemeral event on a chat's channel (typing): never stored.
EPHEMERAL = 0


def message_payload(message: Message) -> bytes:
    """The frame of a message, as it goes on the bus and to every socket."""
    return encode({"type": "message", **message.to_json()})


def event_payload(event: Event) -> bytes:
    """The frame of a timeline event other than a message."""
    return encode({"type": "event", **event.to_json()})


def item_payload(item: Item) -> bytes:
    """The frame of any timeline entry: a message frame or an event frame."""
    return message_payload(item) if isinstance(item, Message) else event_payload(item)


#: How every event frame starts (jsonin.encode is compact and keeps key order).
EVENT_PREFIX = b'{"type":"event"'


def read_event(chat_uri: str, user_id: int, seq: int, node: str) -> bytes:
    """The control event that tells a user's sockets on every node how far they read
    (``node`` names the daemon it comes from, which acted on it already)."""
    return encode({"kind": "read", "chat": chat_uri, "user": user_id, "seq": seq,
                   "node": node})


def revoke_event(token_hashes: list[str]) -> bytes:
    """The control event that closes every socket of these tokens, on every node."""
    return encode({"kind": "revoke", "tokens": token_hashes})


def leave_event(chat_uri: str, user_id: int, reason: str = "left",
                seq: int | None = None) -> bytes:
    """The control event that ends a user's subscriptions to a chat, on every node
    (``reason``: left, or removed; ``seq``: the leave's, so a subscription made after
    a later join is left alone)."""
    return encode({"kind": "leave", "chat": chat_uri, "user": user_id, "reason": reason,
                   "seq": seq})


def chats_event(user_ids: list[int], node: str) -> bytes:
    """The control event that tells these users' sockets, on every node, that their chat
    list changed (a chat they did not follow was made, joined, left or deleted);
    ``node`` names the daemon it comes from, which told its own sockets already."""
    return encode({"kind": "chats", "users": user_ids, "node": node})


def deleted_event(chat_uri: str) -> bytes:
    """The control event that ends every subscription to a deleted chat, on every node."""
    return encode({"kind": "deleted", "chat": chat_uri})
