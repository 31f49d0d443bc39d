"""Password hashing (argon2id, off the reactor thread) and opaque bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import argon2
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool

T = TypeVar("T")

#: Runs a blocking function somewhere and fires with its result.
Runner = Callable[..., "Deferred[Any]"]


def thread_runner(reactor: Any) -> Runner:
    """Run blocking work (argon2) on the reactor's thread pool."""

    def run(function: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)

    return run


def inline_runner(function: Callable[..., T], *args: Any) -> Deferred[T]:
    """Run blocking work at once (tests with a fake reactor)."""
    return maybeDeferred(function, *args)


class Passwords:
    """argon2id hashes of passwords; verifying also says when to rehash."""

    def __init__(self, run: Runner, *, time_cost: int = 2, memory_cost: int = 19456,
                 parallelism: int = 1) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                                             parallelism=parallelism, type=argon2.Type.ID)
        self._run = run

    def hash(self, password: str) -> Deferred[str]:
        return self._run(self._hasher.hash, password)

    def verify(self, password_hash: str, password: str) -> Deferred[bool]:
        """Fire with whether the password matches; never raises for a mismatch."""
        return self._run(self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return bool(self._hasher.check_needs_rehash(password_hash))

    def dummy_verify(self, password: str) -> Deferred[bool]:
        """Spend the time of a verification, so unknown names are not told apart."""
        return self.verify(_DUMMY_HASH, password)


_DUMMY_HASH = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1,
                                    type=argon2.Type.ID).hash("chatire-dummy-password")


def new_token() -> str:
    """A fresh bearer token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
