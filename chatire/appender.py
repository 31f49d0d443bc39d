"""Group commit: the posts waiting for one chat are appended in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatire.errors import Forbidden, Unavailable
from chatire.interfaces import IStore
from chatire.model import Appended, Chat, Post
from chatire.waiters import Waiters

log = Logger()

#: The most posts one transaction takes.
MAX_BATCH = 256

#: A post and the Deferred of its poster.
Waiter = tuple[Post, "Deferred[Appended]"]


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
        self._in_flight = 0
        self._closed = False
        self._idle: Waiters[None] = Waiters()

    def close(self) -> Deferred[None]:
        """Refuse new posts (Unavailable); fire once every post taken so far is settled."""
        self._closed = True
        if self._busy:
            return self._idle.wait()
        return succeed(None)

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
        """Start transactions while there is room; one takes the waiting chats, oldest first.

        Several chats share a transaction (up to MAX_BATCH posts): a statement
        costs the same for one post or many, so under load the cost per post falls.
        """
        while self._ready and self._in_flight < self._max_in_flight:
            chats: list[Chat] = []
            posts = 0
            while self._ready and posts < MAX_BATCH:
                chat = self._ready.pop(next(iter(self._ready)))
                chats.append(chat)
                posts += len(self._waiting.get(chat.uri, ()))
            self._flush_many(chats)

    def _flush_many(self, chats: list[Chat]) -> None:
        if len(chats) == 1:
            self._flush(chats[0])
            return
        batches: list[tuple[Chat, list[tuple[Post, Deferred[Appended]]]]] = []
        room = MAX_BATCH
        for chat in chats:
            queue = self._waiting.pop(chat.uri, [])
            batch, rest = queue[:max(1, room)], queue[max(1, room):]
            room -= len(batch)
            if rest:
                self._waiting[chat.uri] = rest
            self._busy.add(chat.uri)
            batches.append((chat, batch))
        self._in_flight += 1
        stored = self._store.append_chats(
            [(chat, [post for post, _ in batch]) for chat, batch in batches], self._now())

        def settle(results: list[list[Appended | Forbidden]] | Failure) -> None:
            if isinstance(results, Failure) and _isolate(
                    results, sum(len(batch) for _, batch in batches)):
                self._apart(batches, results).addBoth(
                    lambda _: self._done([chat for chat, _ in batches]))
                return
            for i, (_, batch) in enumerate(batches):
                _settle(batch, results if isinstance(results, Failure) else results[i])
            self._done([chat for chat, _ in batches])

        stored.addBoth(settle)

    def _done(self, chats: list[Chat]) -> None:
        """A transaction ended: its chats may take another turn; wake close() when idle."""
        self._in_flight -= 1
        for chat in chats:
            self._busy.discard(chat.uri)
            if chat.uri in self._waiting:
                self._ready[chat.uri] = chat
        self._pump()
        self._wake_if_idle()

    def _wake_if_idle(self) -> None:
        """Fire close()'s waiters once no chat has a transaction running."""
        if not self._busy:
            self._idle.fire(None)

    def _flush(self, chat: Chat) -> None:
        queue = self._waiting.get(chat.uri)
        if not queue:
            self._waiting.pop(chat.uri, None)
            self._busy.discard(chat.uri)
            self._wake_if_idle()
            return
        batch, rest = queue[:MAX_BATCH], queue[MAX_BATCH:]
        if rest:
            self._waiting[chat.uri] = rest
        else:
            del self._waiting[chat.uri]
        self._busy.add(chat.uri)
        self._in_flight += 1
        stored = self._store.append_messages(chat, [post for post, _ in batch], self._now())

        def settle(results: list[Appended | Forbidden] | Failure) -> None:
            if isinstance(results, Failure) and _isolate(results, len(batch)):
                self._apart([(chat, batch)], results).addBoth(lambda _: self._done([chat]))
                return
            _settle(batch, results)
            self._done([chat])

        stored.addBoth(settle)

    def _apart(self, batches: list[tuple[Chat, list[Waiter]]],
               failure: Failure) -> Deferred[None]:
        """Commit the posts of a failed transaction apart; only the offending ones fail."""
        log.warn("a group commit of {count} posts failed ({error}): committing them apart",
                 count=sum(len(batch) for _, batch in batches),
                 error=failure.value.__class__.__name__)
        return Deferred.fromCoroutine(self._bisect(
            [(chat, waiter) for chat, batch in batches for waiter in batch]))

    async def _bisect(self, posts: list[tuple[Chat, Waiter]]) -> None:
        """Halves in order (so a chat's seqs stay in submission order), then the halves of
        the halves that fail, down to single posts, which fail with their own error.

        The failed transaction stored nothing, and a client_id stored by an earlier
        piece is found by a later one: each post is committed and confirmed once. Once
        the store is unavailable, the posts not yet tried fail so too, untried.
        """
        pieces = [posts[len(posts) // 2:], posts[:len(posts) // 2]]  # a stack: first on top
        down: Failure | None = None
        while pieces:
            piece = pieces.pop()
            if down is not None:
                _settle([waiter for _, waiter in piece], down)
                continue
            groups: dict[str, tuple[Chat, list[Waiter]]] = {}
            for chat, waiter in piece:
                groups.setdefault(chat.uri, (chat, []))[1].append(waiter)
            try:
                results = await self._store.append_chats(
                    [(chat, [post for post, _ in batch]) for chat, batch in groups.values()],
                    self._now())
            except Exception:
                failure = Failure()
                if not _isolate(failure, len(piece)):
                    if failure.check(Unavailable):
                        down = failure
                    _settle([waiter for _, waiter in piece], failure)
                else:
                    pieces += [piece[len(piece) // 2:], piece[:len(piece) // 2]]
                continue
            for (_, batch), result in zip(groups.values(), results, strict=True):
                _settle(batch, result)


def _isolate(failure: Failure, posts: int) -> bool:
    """Whether a failed transaction's posts are worth committing apart: several posts,
    and a failure that is not the store's being unavailable (which fails them all)."""
    return posts > 1 and not failure.check(Unavailable)


def _settle(batch: list[tuple[Post, Deferred[Appended]]],
            results: list[Appended | Forbidden] | Failure) -> None:
    """Fire each post's Deferred with its result (all with the failure of the transaction)."""
    if isinstance(results, list):
        for (_, d), result in zip(batch, results, strict=True):
            if isinstance(result, Forbidden):
                d.errback(result)
            else:
                d.callback(result)
    else:  # a Failure: the whole transaction failed
        for _, d in batch:
            d.errback(results)
