"""Group commit: the posts waiting for one chat are appended in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from chatire.errors import Forbidden, Unavailable
from chatire.interfaces import IStore
from chatire.model import Appended, Chat, Post

#: The most posts one transaction takes.
MAX_BATCH = 256


class Appender:
    """One transaction in flight per chat on this node; later posts join the next one.

    Under no load a post is appended alone at once; under load the posts that
    queued while a commit ran share the next commit (a seq range, one fsync).
    At most ``max_in_flight`` transactions run at once (the store's pool size):
    the chats past that wait their turn in order, and their batches grow
    meanwhile instead of queueing for a connection already cut small.
    """

    def __init__(self, store: IStore, now: Callable[[], datetime],
                 max_in_flight: int = 4) -> None:
        self._store = store
        self._now = now
        self._waiting: dict[str, list[tuple[Post, Deferred[Appended]]]] = {}
        self._busy: set[str] = set()
        self._ready: dict[str, Chat] = {}  # chats with posts waiting for a turn, oldest first
        self._max_in_flight = max(1, max_in_flight)
        self._closed = False
        self._idle: list[Deferred[None]] = []

    def close(self) -> Deferred[None]:
        """Refuse new posts (Unavailable); fire once every post taken so far is settled."""
        self._closed = True
        d: Deferred[None] = Deferred()
        if self._busy:
            self._idle.append(d)
        else:
            d.callback(None)
        return d

    def append(self, chat: Chat, post: Post) -> Deferred[Appended]:
        """Fire with the stored message once committed (Forbidden if not a member)."""
        if self._closed:
            return fail(Unavailable("the server is shutting down; send again after reconnecting"))
        d: Deferred[Appended] = Deferred()
        self._waiting.setdefault(chat.uri, []).append((post, d))
        if chat.uri not in self._busy:
            self._ready.setdefault(chat.uri, chat)
            self._pump()
        return d

    def _pump(self) -> None:
        """Start the transactions of waiting chats while there is room."""
        while self._ready and len(self._busy) < self._max_in_flight:
            uri = next(iter(self._ready))
            self._flush(self._ready.pop(uri))

    def _flush(self, chat: Chat) -> None:
        queue = self._waiting.get(chat.uri)
        if not queue:
            self._waiting.pop(chat.uri, None)
            self._busy.discard(chat.uri)
            if not self._busy and self._idle:
                waiters, self._idle = self._idle, []
                for waiter in waiters:
                    waiter.callback(None)
            return
        batch, rest = queue[:MAX_BATCH], queue[MAX_BATCH:]
        if rest:
            self._waiting[chat.uri] = rest
        else:
            del self._waiting[chat.uri]
        self._busy.add(chat.uri)
        stored = self._store.append_messages(chat, [post for post, _ in batch], self._now())

        def settle(results: list[Appended | Forbidden] | Failure) -> None:
            if isinstance(results, list):
                for (_, d), result in zip(batch, results, strict=True):
                    if isinstance(result, Forbidden):
                        d.errback(result)
                    else:
                        d.callback(result)
            else:  # a Failure: the whole transaction failed
                for _, d in batch:
                    d.errback(results)
            self._busy.discard(chat.uri)
            if chat.uri in self._waiting:
                self._ready[chat.uri] = chat
            self._pump()
            if not self._busy and self._idle:
                waiters, self._idle = self._idle, []
                for waiter in waiters:
                    waiter.callback(None)

        stored.addBoth(settle)
