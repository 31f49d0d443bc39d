"""ChatService: the chat rules of accounts, chats, membership, posting, limits and idempotency."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatire.appender import Appender
from chatire.auth import Passwords, new_token, token_hash
from chatire.config import Config
from chatire.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from chatire.interfaces import IStore
from chatire.limits import (
    DEFAULT_CHAT_PAGE,
    DEFAULT_HISTORY_LIMIT,
    MAX_CHAT_PAGE,
    MAX_CLIENT_ID_CHARS,
    MAX_DISPLAY_NAME_CHARS,
    MAX_HISTORY_LIMIT,
    MAX_SEQ,
    MAX_TITLE_CHARS,
    MAX_USERNAME_CHARS,
)
from chatire.logins import LoginLimits
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
from chatire.passwordrules import common_passwords, password_problem
from chatire.ratelimit import TokenBucket
from chatire.text import Text, check

log = Logger()

#: A committed post as its poster is told of it: the message, and whether it is new.
Confirmed = tuple[Message, bool]

USERNAME = re.compile(f"[A-Za-z0-9_.-]{{1,{MAX_USERNAME_CHARS}}}")
#: What a chat uri the server issues looks like (secrets.token_urlsafe): anything
#: else names no chat, whatever the store or the bus would make of it.
CHAT_URI = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_chat_uri(uri: object) -> bool:
    """Whether a name could be a chat the server issued (internal names never are)."""
    return isinstance(uri, str) and CHAT_URI.fullmatch(uri) is not None


def token_refused() -> Unauthenticated:
    """The refusal of a token the store does not hold live."""
    return Unauthenticated("the token is not valid (expired or revoked?)")


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


class ChatService:
    """The chat rules; knows nothing of HTTP, WebSockets, AMQP or SQL."""

    def __init__(self, store: IStore, config: Config, clock: IReactorTime,
                 passwords: Passwords, events: ChatEvents | None = None) -> None:
        self.store = store
        self.config = config
        self.events: ChatEvents = events or _NoEvents()
        self._clock = clock
        self.clock = clock
        self._passwords = passwords
        self._sends = TokenBucket(clock, config.send_rate, config.send_burst)
        self._logins = LoginLimits(store, config.login_failures,
                                   config.login_failures_per_address)
        common_passwords()  # load the list now, not during a request
        # Hourly quotas as token buckets: a burst of the hourly number, refilled
        # evenly over the hour. Per daemon and in memory (see docs/deployment.md).
        self._signups = TokenBucket(clock, config.signup_rate / 3600, config.signup_rate)
        self._new_chats = TokenBucket(clock, config.chat_rate / 3600, config.chat_rate)
        self._appender = Appender(store, self.now)
        self._chats: dict[str, Chat] = {}

    def now(self) -> datetime:
        return utc_from_timestamp(self._clock.seconds())

    # -- accounts -------------------------------------------------------------

    async def register(self, username: str, password: str, display_name: str | None,
                       address: str) -> User:
        """Create an account for a client at ``address``; a taken name counts as one of the
        address's failures (it tells names apart, like a failed sign-in)."""
        self.take_signup(address)  # every attempt counts, refused or not
        if display_name is not None:
            check("display_name", display_name, Text.NAME)
        if not USERNAME.fullmatch(username):
            raise Invalid(f"username: 1 to {MAX_USERNAME_CHARS} of letters, digits, '_', '.' "
                          "and '-'")
        self.check_password(password)
        display = (display_name or "").strip() or username
        if len(display) > MAX_DISPLAY_NAME_CHARS:
            raise Invalid(f"display_name: at most {MAX_DISPLAY_NAME_CHARS} characters")
        self._passwords.admit(address)
        wait = await self._logins.retry_after(None, address, self.now())
        if wait:
            raise RateLimited("too many failed attempts from this address; try again later",
                              retry_after=wait)
        password_hash = await self._passwords.hash(password, address)
        try:
            user: User = await self.store.create_user(username, password_hash, display,
                                                      self.now())
        except Conflict:
            await self._logins.failed(None, address, self.now())
            raise
        log.info("user registered", user_id=user.id)
        return user

    def check_password(self, password: str) -> None:
        """Refuse a new password that is too short, too long, blank or common."""
        check("password", password, Text.PLAIN)
        problem = password_problem(password)
        if problem is not None:
            raise Invalid(problem)

    async def set_password(self, username: str, password: str, address: str) -> User:
        """Give a user a new password; fire with the user."""
        self.check_password(password)
        user: User | None = await self.store.find_user(username)
        if user is None:
            raise NotFound(f"no user named {username!r}")
        password_hash = await self._passwords.hash(password, address)
        await self.store.set_password_hash(user.id, password_hash)
        return user

    def take_signup(self, address: str) -> None:
        """Count one sign-up from a client address; RateLimited past --signup-rate."""
        wait = self._signups.take(address)
        if wait:
            raise RateLimited("too many sign-ups from this address; try again later",
                              retry_after=wait)

    async def sign_in(self, username: str, password: str, address: str) -> tuple[str, User]:
        """A new token for the right password, unless this name from this address, or this
        address, failed too often in the last minute (counted in the store)."""
        # Before the limiter, argon2 and the store: none of them sees a lone surrogate.
        check("username", username, Text.NAME)
        check("password", password, Text.PLAIN)
        self._passwords.admit(address)
        wait = await self._logins.retry_after(username, address, self.now())
        if wait:
            raise RateLimited("too many failed sign-ins; try again later", retry_after=wait)
        found = await self.store.find_login(username)
        if found is None:
            await self._passwords.dummy_verify(password, address)
            await self._logins.failed(username, address, self.now())
            raise Unauthenticated("wrong username or password")
        user, password_hash = found
        matches, new_hash = await self._passwords.verify(password_hash, password, address)
        if not matches:
            await self._logins.failed(username, address, self.now())
            raise Unauthenticated("wrong username or password")
        if new_hash is not None:
            await self.store.set_password_hash(user.id, new_hash)
        token = new_token()
        expires = self.now() + timedelta(seconds=self.config.token_lifetime)
        await self.store.add_token(user.id, token_hash(token), expires)
        return token, user

    async def authenticate(self, token: str) -> User:
        """The user of a live bearer token, or Unauthenticated."""
        return (await self.session(token))[0]

    async def session(self, token: str) -> tuple[User, datetime]:
        """The user of a live bearer token and when the token expires, or Unauthenticated."""
        found: tuple[User, datetime] | None = await self.store.token_session(
            self.token_digest(token), self.now())
        if found is None:
            raise token_refused()
        return found

    def token_digest(self, token: str) -> str:
        """What the store keeps of a bearer token; Unauthenticated if there is none."""
        if not token:
            raise Unauthenticated("a bearer token is required")
        check("token", token, Text.PLAIN)
        return token_hash(token)

    async def sign_out(self, token: str) -> None:
        digest = token_hash(token)
        await self.store.delete_token(digest)
        self.events.tokens_revoked([digest])

    async def revoke_all_tokens(self, user_id: int) -> int:
        hashes: list[str] = await self.store.delete_user_tokens(user_id)
        self.events.tokens_revoked(hashes)
        return len(hashes)

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

