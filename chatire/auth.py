"""Password hashing (argon2id, on a bounded queue of worker threads) and bearer tokens."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import argon2
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from chatire.errors import ChatireError, RateLimited, Unavailable

T = TypeVar("T")


class Runner(Protocol):
    """Runs blocking work for a client somewhere and fires with its result."""

    def __call__(self, client: str, function: Callable[..., T], *args: Any) -> Deferred[T]: ...

    def refusal(self, client: str) -> ChatireError | None:
        """Why a job of this client would be refused right now, if it would."""


class _Inline:
    """Run blocking work at once (tests with a fake reactor)."""

    def __call__(self, client: str, function: Callable[..., T], *args: Any) -> Deferred[T]:
        return maybeDeferred(function, *args)

    def refusal(self, client: str) -> ChatireError | None:
        return None


inline_runner = _Inline()


def default_workers() -> int:
    """Hash threads: one a core, at most four (argon2 releases the GIL)."""
    return max(1, min(4, os.cpu_count() or 1))


class HashQueue:
    """argon2 jobs on a few threads of their own, taken fairly in turn between clients.

    Clients (client addresses) with jobs waiting take turns, one job each; a client
    with nothing waiting goes first, so a flood's backlog delays a lone sign-in by
    the jobs already running only. A client may have ``per_client`` jobs waiting, and
    all clients ``waiting`` in all; past either bound a job is refused at once (429
    for the client's own bound, 503 for the daemon's) instead of queueing behind a
    flood. The reactor thread only does the bookkeeping.
    """

    def __init__(self, reactor: Any, *, workers: int | None = None, waiting: int = 64,
                 per_client: int = 16,
                 start: Callable[..., Deferred[Any]] | None = None) -> None:
        self._reactor = reactor
        self._workers = workers or default_workers()
        self._idle = self._workers
        self._limit = waiting
        self._per_client = per_client
        self._queues: OrderedDict[str, deque[tuple[Callable[..., Any], tuple[Any, ...],
                                                   Deferred[Any]]]] = OrderedDict()
        self.waiting = 0
        self._pool: ThreadPool | None = None
        self._start = start or self._on_pool

    def refusal(self, client: str) -> ChatireError | None:
        queue = self._queues.get(client)
        if queue is not None and len(queue) >= self._per_client:
            return RateLimited("too many password checks from this address at once",
                               retry_after=1)
        if self.waiting >= self._limit:
            return Unavailable("too many password checks at once; try again", retry_after=1)
        return None

    def __call__(self, client: str, function: Callable[..., T], *args: Any) -> Deferred[T]:
        refused = self.refusal(client)
        if refused is not None:
            return fail(refused)
        done: Deferred[T] = Deferred()
        queue = self._queues.get(client)
        if queue is None:  # nothing waiting: goes before the clients with a backlog
            queue = self._queues[client] = deque()
            self._queues.move_to_end(client, last=False)
        queue.append((function, args, done))
        self.waiting += 1
        self._dispatch()
        return done

    def _dispatch(self) -> None:
        while self._idle and self._queues:
            client, queue = self._queues.popitem(last=False)
            function, args, done = queue.popleft()
            if queue:  # its next job goes behind every other client's
                self._queues[client] = queue
            self.waiting -= 1
            self._idle -= 1
            work = self._start(function, *args)
            work.addBoth(self._finished)
            work.chainDeferred(done)

    def _finished(self, result: Any) -> Any:
        self._idle += 1
        self._dispatch()
        return result

    def _on_pool(self, function: Callable[..., T], *args: Any) -> Deferred[T]:
        if self._pool is None:
            self._pool = ThreadPool(minthreads=self._workers, maxthreads=self._workers,
                                    name="chatire-argon2")
            self._pool.start()
            self._reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)
        return deferToThreadPool(self._reactor, self._pool, function, *args)


class Passwords:
    """argon2id hashes of passwords, every hash computed by the runner (off the reactor)."""

    def __init__(self, run: Runner, *, time_cost: int = 2, memory_cost: int = 19456,
                 parallelism: int = 1) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                                             parallelism=parallelism, type=argon2.Type.ID)
        self._run = run
        self._dummy: str | None = None

    def admit(self, client: str) -> None:
        """Refuse at once (before any other work) a client whose job would be refused."""
        refused = self._run.refusal(client)
        if refused is not None:
            raise refused

    def hash(self, password: str, client: str) -> Deferred[str]:
        return self._run(client, self._hasher.hash, password)

    def verify(self, password_hash: str, password: str,
               client: str) -> Deferred[tuple[bool, str | None]]:
        """Fire with whether the password matches, and a new hash if the old one's
        parameters are out of date; never raises for a mismatch."""
        return self._run(client, self._verify, password_hash, password)

    def dummy_verify(self, password: str, client: str) -> Deferred[tuple[bool, str | None]]:
        """Spend the time of a verification, so unknown names are not told apart."""
        return self._run(client, self._verify, None, password)

    def _verify(self, password_hash: str | None, password: str) -> tuple[bool, str | None]:
        if password_hash is None:
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
            password_hash = self._dummy
        try:
            self._hasher.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False, None
        if self._hasher.check_needs_rehash(password_hash):
            return True, self._hasher.hash(password)
        return True, None


def new_token() -> str:
    """A fresh bearer token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
