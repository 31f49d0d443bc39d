"""The account rules of ChatService: sign-up, passwords, sign-in and its lockout, tokens."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatire.auth import Passwords, new_token, token_hash
from chatire.config import Config
from chatire.errors import Conflict, Invalid, NotFound, RateLimited, Unauthenticated
from chatire.interfaces import IStore
from chatire.limits import MAX_DISPLAY_NAME_CHARS, MAX_USERNAME_CHARS
from chatire.logins import LoginLimits
from chatire.model import User
from chatire.passwordrules import common_passwords, password_problem
from chatire.ratelimit import TokenBucket
from chatire.text import Text, check

if TYPE_CHECKING:
    from chatire.chats import ChatEvents

log = Logger()

USERNAME = re.compile(f"[A-Za-z0-9_.-]{{1,{MAX_USERNAME_CHARS}}}")


def token_refused() -> Unauthenticated:
    """The refusal of a token the store does not hold live."""
    return Unauthenticated("the token is not valid (expired or revoked?)")


class Accounts:
    """The base of chatire.chats.ChatService: the rules of accounts and their tokens.

    ``store``, ``config``, ``events`` and ``now`` are the service's.
    """

    store: IStore
    config: Config
    events: ChatEvents
    now: Callable[[], datetime]

    def __init__(self, store: IStore, config: Config, clock: IReactorTime,
                 passwords: Passwords) -> None:
        self._passwords = passwords
        self._logins = LoginLimits(store, config.login_failures,
                                   config.login_failures_per_address)
        common_passwords()  # load the list now, not during a request
        # An hourly quota as a token bucket: a burst of the hourly number, refilled
        # evenly over the hour. Per daemon and in memory (see docs/deployment.md).
        self._signups = TokenBucket(clock, config.signup_rate / 3600, config.signup_rate)

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
