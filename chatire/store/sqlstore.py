"""IStore over any SQL engine: each call is one transaction of chatire.store.queries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred
from zope.interface import implementer

from chatire.errors import Forbidden
from chatire.interfaces import INotifyStore, IStore
from chatire.model import (
    Appended,
    Ask,
    Chat,
    ChatPage,
    Event,
    Invite,
    Member,
    Message,
    Page,
    Post,
    Timeline,
    User,
)
from chatire.notify.due import Claimed, Delivery, Roster
from chatire.notify.payload import Compose
from chatire.notify.settings import NotifySettings
from chatire.store import append, changes, moderation, notify, queries, timeline
from chatire.store.schema import migrate

T = TypeVar("T")

#: What a client is told of a value the store cannot hold (engines raise Invalid).
REFUSED_TEXT = "the text holds characters that cannot be stored"


class Engine(Protocol):
    """Runs one transaction function in a transaction of its own."""

    dialect: str

    def connect(self) -> Deferred[None]: ...

    def close(self) -> Deferred[None]: ...

    def run(self, txn: Callable[..., Awaitable[T]], *args: Any) -> Deferred[T]: ...


@implementer(IStore, INotifyStore)
class SQLStore:
    """The store: chat data in PostgreSQL or SQLite, one transaction a call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect

    def start(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        await self.engine.connect()
        await self.engine.run(migrate)

    def stop(self) -> Deferred[None]:
        return self.engine.close()

    def ping(self) -> Deferred[None]:
        return self.engine.run(queries.ping)

    def create_user(self, username: str, password_hash: str, display_name: str,
                    now: datetime) -> Deferred[User]:
        return self.engine.run(queries.create_user, username, password_hash, display_name, now)

    def find_login(self, username: str) -> Deferred[tuple[User, str] | None]:
        return self.engine.run(queries.find_login, username)

    def user_by_id(self, user_id: int) -> Deferred[User | None]:
        return self.engine.run(queries.user_by_id, user_id)

    def find_user(self, username: str) -> Deferred[User | None]:
        return self.engine.run(queries.find_user, username)

    def set_password_hash(self, user_id: int, password_hash: str) -> Deferred[None]:
        return self.engine.run(queries.set_password_hash, user_id, password_hash)

    def login_failures(self, subjects: list[str],
                       since: datetime) -> Deferred[dict[str, tuple[int, datetime]]]:
        return self.engine.run(queries.login_failures, subjects, since)

    def add_login_failures(self, subjects: list[str], now: datetime,
                           forget_before: datetime) -> Deferred[None]:
        return self.engine.run(queries.add_login_failures, subjects, now, forget_before)

    def add_token(self, user_id: int, token_hash: str, expires_at: datetime) -> Deferred[None]:
        return self.engine.run(queries.add_token, user_id, token_hash, expires_at)

    def token_session(self, token_hash: str,
                      now: datetime) -> Deferred[tuple[User, datetime] | None]:
        return self.engine.run(queries.token_session, token_hash, now)

    def delete_token(self, token_hash: str) -> Deferred[None]:
        return self.engine.run(queries.delete_token, token_hash)

    def delete_user_tokens(self, user_id: int) -> Deferred[list[str]]:
        return self.engine.run(queries.delete_user_tokens, user_id)

    def create_chat(self, uri: str, title: str, owner_id: int, now: datetime) -> Deferred[Chat]:
        return self.engine.run(queries.create_chat, uri, title, owner_id, now)

    def get_chat(self, uri: str) -> Deferred[Chat | None]:
        return self.engine.run(queries.get_chat, uri)

    def list_chats(self, user_id: int, limit: int | None = None,
                   after: tuple[datetime, int] | None = None) -> Deferred[ChatPage]:
        return self.engine.run(queries.list_chats, user_id, limit, after)

    def members(self, chat_id: int) -> Deferred[list[Member]]:
        return self.engine.run(queries.members, chat_id)

    def log_control(self, event: str, now: datetime) -> Deferred[int]:
        return self.engine.run(queries.log_control, event, now)

    def control_since(self, since: datetime) -> Deferred[list[tuple[int, str]]]:
        return self.engine.run(queries.control_since, since)

    def prune_control(self, before: datetime) -> Deferred[None]:
        return self.engine.run(queries.prune_control, before)

    def touch_seen(self, user_ids: list[int], now: datetime) -> Deferred[None]:
        return self.engine.run(queries.touch_seen, user_ids, now)

    def membership(self, chat_id: int, user_id: int) -> Deferred[str | None]:
        return self.engine.run(queries.membership, chat_id, user_id)

    def is_member(self, chat_id: int, user_id: int) -> Deferred[bool]:
        return self.engine.run(queries.is_member, chat_id, user_id)

    def add_member(self, chat: Chat, user: User, now: datetime) -> Deferred[Event | None]:
        return self.engine.run(moderation.join, chat, user, now)

    def remove_member(self, chat: Chat, user: User,
                      now: datetime) -> Deferred[tuple[list[Event], bool]]:
        return self.engine.run(moderation.leave, chat, user, now)

    def remove(self, chat: Chat, actor: User, subject: User, ban: bool,
               now: datetime) -> Deferred[Event | None]:
        return self.engine.run(moderation.remove, chat, actor, subject, ban, now)

    def unban(self, chat_id: int, user_id: int) -> Deferred[bool]:
        return self.engine.run(moderation.unban, chat_id, user_id)

    def set_role(self, chat: Chat, actor: User, subject: User, role: str,
                 now: datetime) -> Deferred[list[Event]]:
        return self.engine.run(moderation.set_role, chat, actor, subject, role, now)

    def change_chat(self, chat: Chat, actor: User, title: str | None, join_by: str | None,
                    now: datetime) -> Deferred[tuple[Chat, list[Event]]]:
        return self.engine.run(moderation.change, chat, actor, title, join_by, now)

    def delete_chat(self, chat: Chat) -> Deferred[None]:
        return self.engine.run(moderation.delete_chat, chat)

    def create_invite(self, chat: Chat, user: User, code: str, expires_at: datetime | None,
                      uses: int | None, now: datetime) -> Deferred[Invite]:
        return self.engine.run(moderation.create_invite, chat, user, code, expires_at, uses,
                               now)

    def invites(self, chat: Chat, now: datetime) -> Deferred[list[Invite]]:
        return self.engine.run(moderation.invites, chat, now)

    def revoke_invite(self, chat: Chat, code: str) -> Deferred[bool]:
        return self.engine.run(moderation.revoke_invite, chat, code)

    def invite_chat(self, code: str, now: datetime) -> Deferred[tuple[Chat, User] | None]:
        return self.engine.run(moderation.invite_chat, code, now)

    def use_invite(self, code: str, user: User,
                   now: datetime) -> Deferred[tuple[Chat, Event | None]]:
        return self.engine.run(moderation.use_invite, code, user, now)

    def direct_chat(self, uri: str, me: User, other: User,
                    now: datetime) -> Deferred[tuple[Chat, bool]]:
        return self.engine.run(moderation.direct_chat, uri, me, other, now)

    def is_banned(self, chat_id: int, user_id: int) -> Deferred[bool]:
        return self.engine.run(moderation.is_banned, chat_id, user_id)

    def append_messages(self, chat: Chat, posts: list[Post],
                        now: datetime) -> Deferred[list[Appended | Forbidden]]:
        return self.engine.run(append.append_messages, chat, posts, now)

    def append_chats(self, batches: list[tuple[Chat, list[Post]]],
                     now: datetime) -> Deferred[list[list[Appended | Forbidden]]]:
        return self.engine.run(append.append_chats, batches, now)

    def history(self, chat: Chat, after: int | None, before: int | None,
                limit: int, viewer: int | None = None) -> Deferred[Page]:
        return self.engine.run(timeline.history, chat, after, before, limit, viewer)

    def events(self, chat: Chat, after: int, limit: int,
               viewer: int | None = None) -> Deferred[Timeline]:
        return self.engine.run(timeline.events, chat, after, limit, viewer)

    def message_at(self, chat: Chat, seq: int) -> Deferred[Message | None]:
        return self.engine.run(timeline.message_at, chat, seq)

    def edit_message(self, chat: Chat, seq: int, user: User, text: str,
                     now: datetime) -> Deferred[Event]:
        return self.engine.run(timeline.edit_message, chat, seq, user, text, now)

    def delete_message(self, chat: Chat, seq: int, user: User,
                       now: datetime) -> Deferred[tuple[Event, bool]]:
        return self.engine.run(timeline.delete_message, chat, seq, user, now)

    def react(self, chat: Chat, seq: int, user: User, emoji: str, on: bool,
              now: datetime) -> Deferred[Event | None]:
        return self.engine.run(timeline.react, chat, seq, user, emoji, on, now)

    def edit_asked(self, ask: Ask, text: str) -> Deferred[Event]:
        return self.engine.run(timeline.edit_asked, ask, text)

    def delete_asked(self, ask: Ask) -> Deferred[tuple[Event, bool]]:
        return self.engine.run(timeline.delete_asked, ask)

    def react_asked(self, ask: Ask, emoji: str, on: bool) -> Deferred[Event | None]:
        return self.engine.run(timeline.react_asked, ask, emoji, on)

    def mark_read(self, marks: list[tuple[int, int, int]]) -> Deferred[list[tuple[int, int, int]]]:
        return self.engine.run(timeline.mark_read, marks)

    def changed_chats(self, since: int | None,
                      chat_uris: list[str]) -> Deferred[tuple[int, dict[str, int]]]:
        return self.engine.run(changes.changed_chats, since, chat_uris)

    # -- notifications (INotifyStore) ---------------------------------------------

    def notify_settings(self, user_id: int) -> Deferred[NotifySettings]:
        return self.engine.run(notify.notify_settings, user_id)

    def save_notify_settings(self, user_id: int, settings: NotifySettings) -> Deferred[None]:
        return self.engine.run(notify.save_notify_settings, user_id, settings)

    def chat_level(self, chat_id: int, user_id: int) -> Deferred[tuple[bool, str | None]]:
        return self.engine.run(notify.chat_level, chat_id, user_id)

    def set_chat_level(self, chat_id: int, user_id: int, level: str | None) -> Deferred[bool]:
        return self.engine.run(notify.set_chat_level, chat_id, user_id, level)

    def roster(self, chat_uri: str) -> Deferred[Roster | None]:
        return self.engine.run(notify.roster, chat_uri)

    def add_due(self, chat_id: int, rows: list[tuple[str, int, int, datetime]],
                now: datetime) -> Deferred[None]:
        return self.engine.run(notify.add_due, chat_id, rows, now)

    def claim_due(self, now: datetime, hold_until: datetime,
                  limit: int) -> Deferred[list[Claimed]]:
        return self.engine.run(notify.claim_due, now, hold_until, limit)

    def prepare_due(self, claims: list[tuple[int, bool]],
                    compose: Compose) -> Deferred[list[Delivery]]:
        return self.engine.run(notify.prepare_due, claims, compose)

    def finish_due(self, due_ids: list[int]) -> Deferred[None]:
        return self.engine.run(notify.finish_due, due_ids)

    def retry_due(self, due_id: int, at: datetime, sent: frozenset[str]) -> Deferred[None]:
        return self.engine.run(notify.retry_due, due_id, at, sent)


def run_sync(coroutine: Awaitable[T]) -> T:
    """Drive a transaction coroutine whose awaits all complete at once (SQLite's)."""
    iterator = coroutine.__await__()
    try:
        next(iterator)
    except StopIteration as done:
        result: T = done.value
        return result
    raise RuntimeError("a synchronous transaction awaited something asynchronous")

