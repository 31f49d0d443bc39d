"""The values of due notifications: a chat's reachable members, a claimed row, a delivery."""

from __future__ import annotations

from datetime import datetime

import attrs

from chatire.notify.settings import Webhook


@attrs.frozen
class RosterEntry:
    """A member of a chat who can be reached: who, at what level, after what delay."""

    user_id: int
    username: str
    level: str
    delay: int


@attrs.frozen
class Roster:
    """A chat's id and its members who can be reached."""

    chat_id: int
    entries: tuple[RosterEntry, ...]


@attrs.frozen
class Claimed:
    """A due row a daemon took: whose, in which chat."""

    id: int
    user_id: int
    chat_uri: str


@attrs.frozen
class Delivery:
    """A notification ready to go: its id and body, where to, and how it went so far."""

    id: int
    nid: str
    payload: str
    webhook: Webhook | None
    email: str | None
    created_at: datetime
    attempts: int
    sent: frozenset[str]
