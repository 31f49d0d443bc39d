"""ChatService: every chat rule (accounts, membership, limits, idempotency) in one place."""

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
from chatire.errors import Forbidden, Invalid, NotFound, RateLimited, Unauthenticated
from chatire.interfaces import IStore
from chatire.model import Appended, Chat, Message, Page, Post, User, utc_from_timestamp
from chatire.ratelimit import FailureWindow, TokenBucket
from chatire.text import Text, check

log = Logger()

USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,150}")
MAX_TITLE_CHARS = 200
MAX_HISTORY_LIMIT = 200
DEFAULT_HISTORY_LIMIT = 50
MAX_CLIENT_ID_CHARS = 128


class ChatEvents(Protocol):
    """Who hears what ChatService did (the Hub, which delivers it live)."""

    def message_committed(self, message: Message) -> None: ...

    def membership_ended(self, chat_uri: str, user_id: int) -> None: ...

    def tokens_revoked(self, token_hashes: list[str]) -> None: ...


class _NoEvents:
    def message_committed(self, message: Message) -> None:
        pass

    def membership_ended(self, chat_uri: str, user_id: int) -> None:
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
        self._passwords = passwords
        self._sends = TokenBucket(clock, config.send_rate, config.send_burst)
        self._logins = FailureWindow(clock, config.login_failures)
        self._appender = Appender(store, self.now)
        self._chats: dict[str, Chat] = {}

    def now(self) -> datetime:
        return utc_from_timestamp(self._clock.seconds())

    # -- accounts -------------------------------------------------------------

    async def register(self, username: str, password: str, display_name: str | None) -> User:
        check("password", password, Text.PLAIN)
        if display_name is not None:
            check("display_name", display_name, Text.NAME)
        if not USERNAME.fullmatch(username):
            raise Invalid("username: 1 to 150 of letters, digits, '_', '.' and '-'")
        if not 8 <= len(password) <= 1024:
            raise Invalid("password: 8 to 1024 characters")
        display = (display_name or "").strip() or username
        if len(display) > 150:
            raise Invalid("display_name: at most 150 characters")
        password_hash = await self._passwords.hash(password)
        user: User = await self.store.create_user(username, password_hash, display, self.now())
        log.info("user registered", user_id=user.id)
        return user

    async def sign_in(self, username: str, password: str) -> tuple[str, User]:
        # Before the limiter, argon2 and the store: none of them sees a lone surrogate.
        check("username", username, Text.NAME)
        check("password", password, Text.PLAIN)
        key = username.lower()
        wait = self._logins.retry_after(key)
        if wait:
            raise RateLimited("too many failed sign-ins; try again later", retry_after=wait)
        found = await self.store.find_login(username)
        if found is None:
            await self._passwords.dummy_verify(password)
            self._logins.fail(key)
            raise Unauthenticated("wrong username or password")
        user, password_hash = found
        if not await self._passwords.verify(password_hash, password):
            self._logins.fail(key)
            raise Unauthenticated("wrong username or password")
        if self._passwords.needs_rehash(password_hash):
            await self.store.set_password_hash(user.id, await self._passwords.hash(password))
        token = new_token()
        expires = self.now() + timedelta(seconds=self.config.token_lifetime)
        await self.store.add_token(user.id, token_hash(token), expires)
        return token, user

    async def authenticate(self, token: str) -> User:
        """The user of a live bearer token, or Unauthenticated."""
        if not token:
            raise Unauthenticated("a bearer token is required")
        check("token", token, Text.PLAIN)
        user: User | None = await self.store.user_for_token(token_hash(token), self.now())
        if user is None:
            raise Unauthenticated("the token is not valid (expired or revoked?)")
        return user

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
        uri = secrets.token_urlsafe(18)
        chat: Chat = await self.store.create_chat(uri, title, user.id, self.now())
        self._chats[uri] = chat
        return chat

    async def list_chats(self, user: User) -> list[Chat]:
        chats: list[Chat] = await self.store.list_chats(user.id)
        return chats

    async def chat(self, uri: str) -> Chat:
        """The chat of a uri (fresh from the store), or NotFound."""
        check("chat", uri, Text.PLAIN)
        chat: Chat | None = await self.store.get_chat(uri)
        if chat is None:
            raise NotFound("no such chat")
        self._chats[uri] = chat
        return chat

    async def _known_chat(self, uri: str) -> Chat:
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

    async def details(self, user: User, uri: str) -> tuple[Chat, list[User]]:
        chat = await self.member_chat(user, uri)
        members: list[User] = await self.store.members(chat.id)
        return chat, members

    async def join(self, user: User, uri: str) -> Chat:
        chat = await self.chat(uri)
        await self.store.add_member(chat.id, user.id, self.now())
        return chat

    async def leave(self, user: User, uri: str) -> None:
        chat = await self.chat(uri)
        if await self.store.remove_member(chat.id, user.id):
            self.events.membership_ended(uri, user.id)

    # -- messages -------------------------------------------------------------

    def clean_text(self, text: str) -> str:
        text = check("message", text, Text.MESSAGE).strip()
        if not text:
            raise Invalid("message: must not be empty")
        if len(text) > self.config.max_message_chars:
            raise Invalid(f"message: at most {self.config.max_message_chars} characters")
        return text

    async def submit(self, user: User, uri: str, text: str,
                     client_id: str | None) -> Deferred[tuple[Message, bool]]:
        """Check and queue a post; the returned Deferred fires once it is committed.

        Posts submitted one after another to one chat get ascending seqs.
        """
        text = self.clean_text(text)
        if client_id is not None:
            if not 1 <= len(client_id) <= MAX_CLIENT_ID_CHARS:
                raise Invalid(f"client_id: 1 to {MAX_CLIENT_ID_CHARS} characters")
            check("client_id", client_id, Text.PLAIN)
        wait = self._sends.take(user.id)
        if wait:
            raise RateLimited("sending too fast; slow down", retry_after=wait)
        chat = await self._known_chat(uri)
        return self._appender.append(chat, Post(user.id, text, client_id)).addCallback(
            self._committed)

    def stop_posting(self) -> Deferred[None]:
        """Refuse posts from now on (Unavailable); fire once the ones taken are settled."""
        return self._appender.close()

    def _committed(self, appended: Appended) -> tuple[Message, bool]:
        if appended.created:
            self.events.message_committed(appended.message)
        return appended.message, appended.created

    async def post(self, user: User, uri: str, text: str,
                   client_id: str | None) -> tuple[Message, bool]:
        """Store a message once; fire with it and whether this call created it."""
        return await (await self.submit(user, uri, text, client_id))

    async def history(self, user: User, uri: str, after: int | None, before: int | None,
                      limit: int | None) -> Page:
        if after is not None and before is not None:
            raise Invalid("give either after or before, not both")
        if after is not None and after < 0:
            raise Invalid("after: must be 0 or more")
        if before is not None and before < 1:
            raise Invalid("before: must be 1 or more")
        if limit is None:
            limit = DEFAULT_HISTORY_LIMIT
        if not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise Invalid(f"limit: 1 to {MAX_HISTORY_LIMIT}")
        chat = await self.member_chat(user, uri)
        page: Page = await self.store.history(chat, after, before, limit)
        return page

