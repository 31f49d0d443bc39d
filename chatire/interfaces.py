"""The two seams of the daemon: where messages are kept (IStore) and how they travel (IBus)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from chatire.errors import Forbidden
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

# ruff: noqa: N805  (zope interfaces declare methods without self)


class IStore(Interface):
    """Durable state: users, tokens, chats, members, messages.

    Every method returns a Deferred; a lost connection fails it with
    ``chatire.errors.Unavailable``.
    """

    def start() -> Deferred[None]:
        """Connect and apply the schema migrations."""

    def stop() -> Deferred[None]:
        """Close every connection."""

    def ping() -> Deferred[None]:
        """Succeed when the store answers a trivial query."""

    def create_user(username: str, password_hash: str, display_name: str,
                    now: datetime) -> Deferred[User]:
        """Insert a user; fire with the ``User``, or fail with ``Conflict``."""

    def find_login(username: str) -> Deferred[tuple[User, str] | None]:
        """Fire with ``(User, password_hash)`` by case-insensitive name, or ``None``."""

    def user_by_id(user_id: int) -> Deferred[User | None]:
        """Fire with the ``User`` of an id, or ``None``."""

    def find_user(username: str) -> Deferred[User | None]:
        """Fire with the ``User`` of a case-insensitive name, or ``None``."""

    def set_password_hash(user_id: int, password_hash: str) -> Deferred[None]:
        """Replace a user's password hash."""

    def login_failures(subjects: list[str],
                       since: datetime) -> Deferred[dict[str, tuple[int, datetime]]]:
        """Fire with ``{subject: (count, oldest time)}`` of failed sign-ins after ``since``
        (subjects with none are left out)."""

    def add_login_failures(subjects: list[str], now: datetime,
                           forget_before: datetime) -> Deferred[None]:
        """Record one failed sign-in of each subject, and forget every failure older
        than ``forget_before``."""

    def add_token(user_id: int, token_hash: str, expires_at: datetime) -> Deferred[None]:
        """Record a new bearer token by its hash."""

    def token_session(token_hash: str, now: datetime) -> Deferred[tuple[User, datetime] | None]:
        """Fire with ``(User, expires_at)`` of a live token, or ``None``."""

    def delete_token(token_hash: str) -> Deferred[None]:
        """Revoke one token."""

    def delete_user_tokens(user_id: int) -> Deferred[list[str]]:
        """Revoke every token of a user; fire with the hashes revoked."""

    def create_chat(uri: str, title: str, owner_id: int, now: datetime) -> Deferred[Chat]:
        """Create a chat with its owner as first member; fire with the ``Chat``."""

    def get_chat(uri: str) -> Deferred[Chat | None]:
        """Fire with the ``Chat`` or ``None``."""

    def list_chats(user_id: int, limit: int | None = None,
                   after: tuple[datetime, int] | None = None) -> Deferred[ChatPage]:
        """Fire with at most ``limit`` of the user's chats, latest activity first,
        after the (last_activity_at, id) key ``after``, and the key of the next page."""

    def members(chat_id: int) -> Deferred[list[Member]]:
        """Fire with the chat's members (user, role, read_seq), by join order."""

    def log_control(event: str, now: datetime) -> Deferred[int]:
        """Keep a control event (JSON) for the daemons that miss it on the bus; its id."""

    def control_since(since: datetime) -> Deferred[list[tuple[int, str]]]:
        """The control events kept after a time, as (id, JSON), oldest first."""

    def prune_control(before: datetime) -> Deferred[None]:
        """Forget the control events older than a time."""

    def touch_seen(user_ids: list[int], now: datetime) -> Deferred[None]:
        """Note that these users were online until now (their last_seen)."""

    def membership(chat_id: int, user_id: int) -> Deferred[str | None]:
        """Fire with the user's role in the chat, or None if not a member."""

    def is_member(chat_id: int, user_id: int) -> Deferred[bool]:
        """Fire with whether the user is a member of the chat."""

    def add_member(chat: Chat, user: User, now: datetime) -> Deferred[Event | None]:
        """Make the user a member; fire with the join event, or None if already one."""

    def remove_member(chat: Chat, user: User,
                      now: datetime) -> Deferred[tuple[list[Event], bool]]:
        """End a membership (a leave): fire with its events (leave, and the new owner's
        role if the owner left) and whether the chat was deleted (its last member left)."""

    def remove(chat: Chat, actor: User, subject: User, ban: bool,
               now: datetime) -> Deferred[Event | None]:
        """Put a member out (and ban them); the remove event, or None if nothing changed."""

    def unban(chat_id: int, user_id: int) -> Deferred[bool]:
        """Lift a ban; fire with whether there was one."""

    def set_role(chat: Chat, actor: User, subject: User, role: str,
                 now: datetime) -> Deferred[list[Event]]:
        """Give a member a role (owner: hand the chat over); the role events."""

    def change_chat(chat: Chat, actor: User, title: str | None, join_by: str | None,
                    now: datetime) -> Deferred[tuple[Chat, list[Event]]]:
        """Rename a chat or change who may join; the chat now and an event a change."""

    def delete_chat(chat: Chat) -> Deferred[None]:
        """Delete a chat with everything in it."""

    def create_invite(chat: Chat, user: User, code: str, expires_at: datetime | None,
                      uses: int | None, now: datetime) -> Deferred[Invite]:
        """Store a new invite code."""

    def invites(chat: Chat, now: datetime) -> Deferred[list[Invite]]:
        """The chat's live invites, newest first."""

    def revoke_invite(chat: Chat, code: str) -> Deferred[bool]:
        """Stop an invite working; fire with whether it was live."""

    def invite_chat(code: str, now: datetime) -> Deferred[tuple[Chat, User] | None]:
        """The chat of a live invite and who made it, or None."""

    def use_invite(code: str, user: User,
                   now: datetime) -> Deferred[tuple[Chat, Event | None]]:
        """Join through an invite (NotFound if not live, Forbidden if banned)."""

    def direct_chat(uri: str, me: User, other: User,
                    now: datetime) -> Deferred[tuple[Chat, bool]]:
        """The direct chat of two users, and whether this call made it."""

    def is_banned(chat_id: int, user_id: int) -> Deferred[bool]:
        """Whether the user is banned from the chat."""

    def append_messages(chat: Chat, posts: list[Post],
                        now: datetime) -> Deferred[list[Appended | Forbidden]]:
        """Store ``Post`` values of members in one transaction, in order.

        Fires with one ``Appended`` per post: the stored message and whether
        this call created it (False for a repeated ``client_id``). A post whose
        author is no longer a member gets ``Forbidden`` in its place.
        """

    def append_chats(batches: list[tuple[Chat, list[Post]]],
                     now: datetime) -> Deferred[list[list[Appended | Forbidden]]]:
        """append_messages for several chats in one transaction: one result list a chat."""

    def history(chat: Chat, after: int | None, before: int | None,
                limit: int, viewer: int | None = None) -> Deferred[Page]:
        """Fire with a ``Page`` of messages: seq > after, or seq < before, or the latest;
        the viewer's own reactions are always listed."""

    def events(chat: Chat, after: int, limit: int,
               viewer: int | None = None) -> Deferred[Timeline]:
        """Fire with the timeline after a seq, every kind, ascending."""

    def message_at(chat: Chat, seq: int) -> Deferred[Message | None]:
        """Fire with the message of a seq in its current state, or None."""

    def edit_message(chat: Chat, seq: int, user: User, text: str,
                     now: datetime) -> Deferred[Event]:
        """Replace a message's text; Conflict if it is deleted."""

    def delete_message(chat: Chat, seq: int, user: User,
                       now: datetime) -> Deferred[tuple[Event, bool]]:
        """Erase a message; the delete event and whether this call made it."""

    def react(chat: Chat, seq: int, user: User, emoji: str, on: bool,
              now: datetime) -> Deferred[Event | None]:
        """Add or take back a reaction; the event, or None if nothing changed."""

    def edit_asked(ask: Ask, text: str) -> Deferred[Event]:
        """edit_message of the Ask's token, chat and seq, judged by its rules: the token
        check, the rules and the change in one transaction."""

    def delete_asked(ask: Ask) -> Deferred[tuple[Event, bool]]:
        """delete_message as the Ask says, in one transaction (see edit_asked)."""

    def react_asked(ask: Ask, emoji: str, on: bool) -> Deferred[Event | None]:
        """react as the Ask says, in one transaction (see edit_asked)."""

    def mark_read(marks: list[tuple[int, int, int]]) -> Deferred[list[tuple[int, int, int]]]:
        """Raise (chat id, user id) read_seqs; fire with the values now, for members."""

    def changed_chats(since: int | None,
                      chat_uris: list[str]) -> Deferred[tuple[int, dict[str, int]]]:
        """Fire with a mark and ``{uri: last_seq}`` of the chats named that exist and,
        unless ``since`` is None, of every chat whose last_seq moved since the earlier
        call that gave the mark ``since`` (one query; chatire.store.changes)."""


class INotifyStore(Interface):
    """What notifications keep: settings, per-chat levels, and the due rows
    (one per member per chat per burst) that daemons claim, send and delete."""

    def notify_settings(user_id: int) -> Deferred[NotifySettings]:
        """The user's settings (the defaults if they set none)."""

    def save_notify_settings(user_id: int, settings: NotifySettings) -> Deferred[None]:
        """Replace the user's settings."""

    def chat_level(chat_id: int, user_id: int) -> Deferred[tuple[bool, str | None]]:
        """Whether the user is a member, and their level for the chat (None: default)."""

    def set_chat_level(chat_id: int, user_id: int, level: str | None) -> Deferred[bool]:
        """Set the member's level for the chat; fire with whether they are a member."""

    def roster(chat_uri: str) -> Deferred[Roster | None]:
        """The chat's members who can be reached (a channel, a level but none)."""

    def add_due(chat_id: int, rows: list[tuple[str, int, int, datetime]],
                now: datetime) -> Deferred[None]:
        """Open a burst per (id, user id, first seq, due at) unless one is open."""

    def claim_due(now: datetime, hold_until: datetime, limit: int) -> Deferred[list[Claimed]]:
        """Take due rows no other daemon holds, holding them until ``hold_until``."""

    def prepare_due(claims: list[tuple[int, bool]],
                    compose: Compose) -> Deferred[list[Delivery]]:
        """The notifications of claimed rows, given as (row id, member online), in one
        transaction (content fixed on first use); the rows with nothing due any more are
        deleted and left out."""

    def finish_due(due_ids: list[int]) -> Deferred[None]:
        """Delete delivered (or dropped) notifications, in one statement."""

    def retry_due(due_id: int, at: datetime, sent: frozenset[str]) -> Deferred[None]:
        """Schedule another attempt; ``sent`` names the channels that took it already."""


#: ``handler(chat_uri, seq, payload, ack)``: a message arrived from the bus.
BusHandler = Callable[[str, int, bytes, Callable[[], None]], None]


class IBus(Interface):
    """Carries committed messages between daemons, one fanout per chat."""

    connected = Attribute("True while the bus can publish and receive.")

    def start(on_message: BusHandler, on_reconnect: Callable[[], None]) -> None:
        """Connect (and keep reconnecting); ``on_reconnect`` runs after each
        (re)connection once the followed chats are bound again."""

    def stop() -> Deferred[None]:
        """Disconnect and stop reconnecting."""

    def publish(chat_uri: str, seq: int, payload: bytes) -> Deferred[None]:
        """Send a message to every node following the chat.

        Fires when the broker confirmed it; a failure is for logging only, the
        followers heal it from the store.
        """

    def follow(chat_uri: str) -> None:
        """Receive the chat's messages on this node."""

    def unfollow(chat_uri: str) -> None:
        """Stop receiving them (the implementation may do it lazily)."""

    def remove(chat_uri: str) -> None:
        """The chat was deleted: remove whatever the bus keeps for it (its exchange)."""
