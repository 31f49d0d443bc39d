"""Value objects of the chat domain and their JSON shapes (PROTOCOL.md, Objects)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, millisecond precision."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def utc_from_timestamp(seconds: float) -> datetime:
    """An aware UTC datetime from POSIX seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC)


@attrs.frozen
class User:
    """A signed-up person; never carries private fields."""

    id: int
    username: str
    display_name: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "display_name": self.display_name}


@attrs.frozen
class Chat:
    """A chat room, identified by its unguessable uri."""

    id: int
    uri: str
    title: str
    owner: User
    created_at: datetime
    last_seq: int
    kind: str = "group"  # or "direct": two people, nobody else
    join: str = "link"  # or "invite": the uri alone does not let anyone in
    # Only the chat list fills these (and shows them): see to_list_json.
    last_message: LastMessage | None = None
    mine: Membership | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "title": self.title,
            "owner": self.owner.to_json(),
            "created_at": iso(self.created_at),
            "last_seq": self.last_seq,
            "kind": self.kind,
            "join": self.join,
        }

    def to_list_json(self) -> dict[str, Any]:
        """The chat as GET /api/chats shows it: with its latest message (or null) and
        the caller's role, read_seq and unread count."""
        last = self.last_message
        body = {**self.to_json(), "last_message": None if last is None else last.to_json()}
        if self.mine is not None:
            body.update(self.mine.to_json())
        return body


@attrs.frozen
class Membership:
    """The caller's place in a chat: role, how far they read, how much is unread."""

    role: str
    read_seq: int
    unread: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "read_seq": self.read_seq, "unread": self.unread}


@attrs.frozen
class Member:
    """A member as the chat's details list it: the user, role, read state and presence."""

    user: User
    role: str
    read_seq: int
    last_seen: datetime | None = None
    online: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**self.user.to_json(), "role": self.role, "read_seq": self.read_seq,
                "online": self.online,
                "last_seen": None if self.last_seen is None else iso(self.last_seen)}


@attrs.frozen
class LastMessage:
    """A chat's latest message as the chat list previews it: who, what, when."""

    user: User
    message: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user.to_json(), "message": self.message,
                "created_at": iso(self.created_at)}


@attrs.frozen
class Invite:
    """A code that lets people into a chat: until when, how many more times, whose."""

    code: str
    chat: str
    expires_at: datetime | None
    uses_left: int | None
    created_by: User
    created_at: datetime

    def to_json(self, base_url: str = "") -> dict[str, Any]:
        return {"code": self.code, "url": f"{base_url}/i/{self.code}", "chat": self.chat,
                "expires_at": None if self.expires_at is None else iso(self.expires_at),
                "uses_left": self.uses_left, "created_by": self.created_by.to_json(),
                "created_at": iso(self.created_at)}


@attrs.frozen
class Reaction:
    """One emoji on a message: how many reacted with it, and the first few of them."""

    emoji: str
    count: int
    users: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"emoji": self.emoji, "count": self.count, "users": list(self.users)}


@attrs.frozen
class Message:
    """One committed message with its per-chat seq and global id, in its current state."""

    chat: str
    seq: int
    id: int
    user: User
    message: str
    client_id: str | None
    created_at: datetime
    reply_to: int | None = None
    edited_at: datetime | None = None
    deleted: bool = False
    reactions: tuple[Reaction, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "chat": self.chat,
            "seq": self.seq,
            "id": self.id,
            "user": self.user.to_json(),
            "message": self.message,
            "client_id": self.client_id,
            "created_at": iso(self.created_at),
            "reply_to": self.reply_to,
            "edited_at": None if self.edited_at is None else iso(self.edited_at),
            "deleted": self.deleted,
            "reactions": [reaction.to_json() for reaction in self.reactions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """Rebuild a message from its JSON shape (as it travels on the bus)."""
        user = data["user"]
        return cls(
            chat=data["chat"],
            seq=int(data["seq"]),
            id=int(data["id"]),
            user=User(int(user["id"]), user["username"], user["display_name"]),
            message=data["message"],
            client_id=data.get("client_id"),
            created_at=_parse_time(data["created_at"]),
            reply_to=data.get("reply_to"),
            edited_at=None if data.get("edited_at") is None else _parse_time(data["edited_at"]),
            deleted=bool(data.get("deleted", False)),
            reactions=tuple(Reaction(r["emoji"], int(r["count"]), tuple(r["users"]))
                            for r in data.get("reactions", ())),
        )


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


#: The kinds of event beside ``message`` (PROTOCOL.md, The chat timeline).
EVENT_KINDS = frozenset({"edit", "delete", "react", "unreact", "join", "leave"})


@attrs.frozen
class Event:
    """A change to a chat other than a new message, with the chat's seq."""

    chat: str
    seq: int
    id: int
    kind: str
    user: User
    created_at: datetime
    fields: dict[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def target(self) -> int | None:
        """The seq of the message this event changes, if any."""
        target = self.fields.get("target")
        return None if target is None else int(target)

    def to_json(self) -> dict[str, Any]:
        return {"chat": self.chat, "seq": self.seq, "id": self.id, "kind": self.kind,
                "user": self.user.to_json(), "created_at": iso(self.created_at),
                **self.fields}


#: One entry of a chat's timeline.
Item = Message | Event


def item_json(item: Item) -> dict[str, Any]:
    """An entry as GET .../events lists it: a message is its Message with kind message."""
    if isinstance(item, Message):
        return {**item.to_json(), "kind": "message"}
    return item.to_json()


@attrs.frozen
class Timeline:
    """A slice of a chat's timeline (every kind), ascending by seq."""

    items: tuple[Item, ...]
    has_more: bool


@attrs.frozen
class Page:
    """A slice of a chat's history, ascending by seq."""

    messages: tuple[Message, ...]
    has_more: bool


@attrs.frozen
class ChatPage:
    """A slice of a user's chats, latest activity first, and where the next slice starts."""

    chats: tuple[Chat, ...]
    next: tuple[datetime, int] | None  # (last_activity_at, id) of the last chat given


@attrs.frozen
class Post:
    """One message to append: who, what, and the sender's idempotency key."""

    user_id: int
    text: str
    client_id: str | None
    reply_to: int | None = None


@attrs.frozen
class Appended:
    """The outcome of one Post: the stored message, and whether it is new."""

    message: Message
    created: bool


@attrs.frozen
class Standing:
    """What a timeline change is judged on, read in the change's own transaction: who
    asks, the chat (None: no such chat), their role in it (None: not a member), the
    message's author (None: no such message) and whether it is deleted."""

    user: User
    chat: Chat | None
    role: str | None
    author: int | None
    deleted: bool


@attrs.frozen
class Ask:
    """A timeline change asked with a bearer token, done in ONE store transaction: the
    store reads the Standing (None: the token is not live) and ``judge`` refuses it by
    raising, before the change and again under the chat row's lock; ``gate`` counts the
    change against the user's rate (raising when over), once the rules let it by."""

    token_hash: str
    uri: str
    seq: int
    now: datetime
    judge: Callable[[Standing | None], None]
    gate: Callable[[User], None] | None = None
