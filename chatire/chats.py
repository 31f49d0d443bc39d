"""ChatService: the chat rules of chats, membership, posting, limits and idempotency."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatire.accounts import USERNAME as USERNAME  # re-exported: chatire.moderation's
from chatire.accounts import Accounts
from chatire.accounts import token_refused as token_refused  # re-exported: chatire.timeline's
from chatire.appender import Appender
from chatire.auth import Passwords
from chatire.config import Config
from chatire.errors import (
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
)
from chatire.interfaces import IStore
from chatire.limits import (
    DEFAULT_CHAT_PAGE,
    DEFAULT_HISTORY_LIMIT,
    MAX_CHAT_PAGE,
    MAX_CLIENT_ID_CHARS,
    MAX_HISTORY_LIMIT,
    MAX_SEQ,
    MAX_TITLE_CHARS,
)
from chatire.model import (
    Appended,
    Chat,
    ChatPage,
    Event,
    Member,
    Message,
    Page,
    Post,
    User,
    utc_from_timestamp,
)
from chatire.paging import decode_cursor, encode_cursor
from chatire.ratelimit import TokenBucket
from chatire.text import Text, check

log = Logger()

#: A committed post as its poster is told of it: the message, and whether it is new.
Confirmed = tuple[Message, bool]

#: What a chat uri the server issues looks like (secrets.token_urlsafe): anything
#: else names no chat, whatever the store or the bus would make of it.
CHAT_URI = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_chat_uri(uri: object) -> bool:
    """Whether a name could be a chat the server issued (internal names never are)."""
    return isinstance(uri, str) and CHAT_URI.fullmatch(uri) is not None


class ChatEvents(Protocol):
    """Who hears what ChatService did (the Hub, which delivers it live)."""

    def message_committed(self, message: Message) -> Deferred[None] | None: ...

    def event_committed(self, event: Event) -> None: ...

    def read_marked(self, chat_uri: str, user_id: int, seq: int, origin: object) -> None: ...

    def membership_ended(self, chat_uri: str, user_id: int, reason: str,
                         seq: int | None = None) -> None: ...

    def chat_deleted(self, chat_uri: str) -> None: ...

    def chats_changed(self, user_ids: list[int]) -> None: ...

    def tokens_revoked(self, token_hashes: list[str]) -> None: ...


class _NoEvents:
    def message_committed(self, message: Message) -> Deferred[None] | None:
        return None

    def event_committed(self, event: Event) -> None:
        pass

    def read_marked(self, chat_uri: str, user_id: int, seq: int, origin: object) -> None:
        pass

    def membership_ended(self, chat_uri: str, user_id: int, reason: str,
                         seq: int | None = None) -> None:
        pass

    def chat_deleted(self, chat_uri: str) -> None:
        pass

    def chats_changed(self, user_ids: list[int]) -> None:
        pass

    def tokens_revoked(self, token_hashes: list[str]) -> None:
        pass


class ChatService(Accounts):
    """The chat rules; knows nothing of HTTP, WebSockets, AMQP or SQL.

    The rules of accounts and tokens are its base's, chatire.accounts.Accounts.
    """

    def __init__(self, store: IStore, config: Config, clock: IReactorTime,
                 passwords: Passwords, events: ChatEvents | None = None) -> None:
        self.store = store
        self.config = config
        self.events: ChatEvents = events or _NoEvents()
        self._clock = clock
        self.clock = clock
        super().__init__(store, config, clock, passwords)
        self._sends = TokenBucket(clock, config.send_rate, config.send_burst)
        # An hourly quota as a token bucket, as sign-ups' (chatire.accounts).
        self._new_chats = TokenBucket(clock, config.chat_rate / 3600, config.chat_rate)
        self._appender = Appender(store, self.now)
        self._chats: dict[str, Chat] = {}

    def now(self) -> datetime:
        return utc_from_timestamp(self._clock.seconds())

    # -- chats and members ----------------------------------------------------

    async def create_chat(self, user: User, title: str | None) -> Chat:
        title = check("title", (title or "").strip(), Text.NAME)
        if len(title) > MAX_TITLE_CHARS:
            raise Invalid(f"title: at most {MAX_TITLE_CHARS} characters")
        wait = self._new_chats.take(user.id)
        if wait:
            raise RateLimited("too many new chats; try again later", retry_after=wait)
        uri = secrets.token_urlsafe(18)
        chat: Chat = await self.store.create_chat(uri, title, user.id, self.now())
        self._chats[uri] = chat
        self.events.chats_changed([user.id])
        return chat

    async def list_chats(self, user: User, limit: int | None = None,
                         cursor: str | None = None) -> tuple[list[Chat], str | None]:
        """A page of the user's chats, latest activity first, and the next page's cursor."""
        if limit is None:
            limit = DEFAULT_CHAT_PAGE
        if not 1 <= limit <= MAX_CHAT_PAGE:
            raise Invalid(f"limit: 1 to {MAX_CHAT_PAGE}")
        after = None if cursor is None else decode_cursor(cursor)
        page: ChatPage = await self.store.list_chats(user.id, limit, after)
        return list(page.chats), None if page.next is None else encode_cursor(page.next)

    async def chat(self, uri: str) -> Chat:
        """The chat of a uri (fresh from the store), or NotFound.

        A name the server never issues is NotFound before the store is asked.
        """
        if not is_chat_uri(uri):
            raise NotFound("no such chat")
        chat: Chat | None = await self.store.get_chat(uri)
        if chat is None:
            raise NotFound("no such chat")
        self._chats[uri] = chat
        return chat

    async def known_chat(self, uri: str) -> Chat:
        """The chat's identity, cached: uri and id never change."""
        chat = self._chats.get(uri)
        if chat is None:
            if len(self._chats) > 100_000:
                self._chats.clear()
            chat = await self.chat(uri)
        return chat

    async def member_chat(self, user: User, uri: str) -> Chat:
        """The chat, fresh, if the user is a member; NotFound or Forbidden otherwise."""
        chat = await self.chat(uri)
        if not await self.store.is_member(chat.id, user.id):
            raise Forbidden("you are not a member of this chat")
        return chat

    async def member_role(self, user: User, uri: str) -> tuple[Chat, str]:
        """The chat's identity and the user's role in it; NotFound or Forbidden otherwise."""
        chat = await self.known_chat(uri)
        role: str | None = await self.store.membership(chat.id, user.id)
        if role is None:
            raise Forbidden("you are not a member of this chat")
        return chat, role

    async def details(self, user: User, uri: str) -> tuple[Chat, list[Member]]:
        chat = await self.member_chat(user, uri)
        members: list[Member] = await self.store.members(chat.id)
        return chat, members

    async def join(self, user: User, uri: str) -> Chat:
        """Join by the uri: a link chat (not a direct one), unless banned; idempotent."""
        chat = await self.chat(uri)
        if chat.kind == "direct" or chat.join == "invite":
            if await self.store.is_member(chat.id, user.id):
                return chat
            raise Forbidden("this chat takes members by invite only" if chat.kind == "group"
                            else "nobody else may join a direct chat")
        joined: Event | None = await self.store.add_member(chat, user, self.now())
        if joined is not None:
            self.events.event_committed(joined)
            self.events.chats_changed([user.id])  # the user's other tabs and devices
            chat = await self.chat(uri)  # last_seq is the join's now
        return chat

    async def leave(self, user: User, uri: str) -> None:
        """Leave; the earliest admin (else member) takes over from an owner who leaves,
        and a group chat's last member leaving deletes it."""
        chat = await self.chat(uri)
        events, deleted = await self.store.remove_member(chat, user, self.now())
        if deleted:
            self.forget(uri)
            self.events.chat_deleted(uri)
            return
        for event in events:
            self.events.event_committed(event)
        if events:
            self.events.membership_ended(uri, user.id, "left", events[0].seq)
            self.events.chats_changed([user.id])

    async def user_by_id(self, user_id: int) -> User:
        """A user by id, or NotFound."""
        if not 1 <= user_id <= MAX_SEQ:
            raise NotFound("no such user")
        user: User | None = await self.store.user_by_id(user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    def forget(self, uri: str) -> None:
        """A chat is gone: drop its cached identity."""
        self._chats.pop(uri, None)

    # -- messages -------------------------------------------------------------

    def clean_text(self, text: str) -> str:
        text = check("message", text, Text.MESSAGE).strip()
        if not text:
            raise Invalid("message: must not be empty")
        if len(text) > self.config.max_message_chars:
            raise Invalid(f"message: at most {self.config.max_message_chars} characters")
        return text

    def take_send(self, user: User) -> None:
        """Count one change by the user (a post, an edit, a reaction); RateLimited past
        --send-rate."""
        wait = self._sends.take(user.id)
        if wait:
            raise RateLimited("sending too fast; slow down", retry_after=wait)

    async def submit(self, user: User, uri: str, text: str, client_id: str | None,
                     reply_to: int | None = None) -> Deferred[tuple[Message, bool]]:
        """Check and queue a post; the returned Deferred fires once it is committed.

        Posts submitted one after another to one chat get ascending seqs. A reply
        names a message of the same chat (messages are never removed, so the check
        cannot race: a deleted one stays as a tombstone).
        """
        text = self.clean_text(text)
        if client_id is not None:
            if not 1 <= len(client_id) <= MAX_CLIENT_ID_CHARS:
                raise Invalid(f"client_id: 1 to {MAX_CLIENT_ID_CHARS} characters")
            check("client_id", client_id, Text.PLAIN)
        self.take_send(user)
        chat = await self.known_chat(uri)
        if reply_to is not None and (not 1 <= reply_to <= MAX_SEQ
                                     or await self.store.message_at(chat, reply_to) is None):
            raise Invalid("reply_to: not a message of this chat")
        post = Post(user.id, text, client_id, reply_to)
        return self._appender.append(chat, post).addCallback(self._committed)

    def stop_posting(self) -> Deferred[None]:
        """Refuse posts from now on (Unavailable); fire once the ones taken are settled."""
        return self._appender.close()

    def _committed(self, appended: Appended) -> Confirmed | Deferred[Confirmed]:
        """Tell the daemon's parts of a new message; confirmed once they kept what they
        must (the notifications it makes due)."""
        message = appended.message
        if appended.created:
            kept = self.events.message_committed(message)
            if kept is not None:
                return kept.addCallback(lambda _: (message, True))
        return message, appended.created

    async def post(self, user: User, uri: str, text: str, client_id: str | None,
                   reply_to: int | None = None) -> tuple[Message, bool]:
        """Store a message once; fire with it and whether this call created it."""
        return await (await self.submit(user, uri, text, client_id, reply_to))

    async def history(self, user: User, uri: str, after: int | None, before: int | None,
                      limit: int | None) -> Page:
        if after is not None and before is not None:
            raise Invalid("give either after or before, not both")
        if after is not None and not 0 <= after <= MAX_SEQ:
            raise Invalid("after: must be 0 or more")
        if before is not None and not 1 <= before <= MAX_SEQ:
            raise Invalid("before: must be 1 or more")
        if limit is None:
            limit = DEFAULT_HISTORY_LIMIT
        if not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise Invalid(f"limit: 1 to {MAX_HISTORY_LIMIT}")
        chat = await self.member_chat(user, uri)
        page: Page = await self.store.history(chat, after, before, limit, user.id)
        return page

