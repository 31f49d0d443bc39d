"""Value objects of the chat domain and their JSON shapes (PROTOCOL.md, Objects)."""

from __future__ import annotations

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
    # Only the chat list fills it (and shows it): see to_list_json.
    last_message: LastMessage | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "title": self.title,
            "owner": self.owner.to_json(),
            "created_at": iso(self.created_at),
            "last_seq": self.last_seq,
        }

    def to_list_json(self) -> dict[str, Any]:
        """The chat as GET /api/chats shows it: with its latest message, or null."""
        last = self.last_message
        return {**self.to_json(), "last_message": None if last is None else last.to_json()}


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
class Message:
    """One committed message with its per-chat seq and global id."""

    chat: str
    seq: int
    id: int
    user: User
    message: str
    client_id: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "chat": self.chat,
            "seq": self.seq,
            "id": self.id,
            "user": self.user.to_json(),
            "message": self.message,
            "client_id": self.client_id,
            "created_at": iso(self.created_at),
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
            created_at=datetime.fromisoformat(data["created_at"].replace("Z", "+00:00")),
        )


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


@attrs.frozen
class Appended:
    """The outcome of one Post: the stored message, and whether it is new."""

    message: Message
    created: bool
