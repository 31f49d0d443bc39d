"""Per-subscription order for the Hub: in-order delivery, gap fill from the store, the frame cache.

A subscription is sent seq ``last_sent + 1`` and nothing else: an older seq is dropped, a
newer one waits in ``pending`` while the missing range is fetched from the store. Each
payload is prepared as a frame once and cached, whatever the fanout.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatire.errors import ChatireError
from chatire.frames import item_payload
from chatire.interfaces import IStore
from chatire.model import Chat, Timeline
from chatire.subscription import Ack, Subscriber, Subscription
from chatire.sweep import Sweep
from chatire.waiters import Waiters

log = Logger()


class Ordering:
    """The base of chatire.delivery.Hub: each subscription gets every seq once, in order.

    The fields below the first are the Hub's: its store, how it prepares a frame, its
    subscriptions by chat, the chat rows they were made with, and its sweep.
    """

    store: IStore
    _prepare: Callable[[bytes], Any]
    _subs: dict[str, dict[Subscriber, Subscription]]
    _chat_rows: dict[str, Chat]
    _sweep: Sweep

    def __init__(self, page_size: int, frame_cache: int) -> None:
        self._page_size = page_size
        self._frames: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._frame_cache = frame_cache
        self._fetching: dict[tuple[str, int], Waiters[Timeline]] = {}
        self.gap_fills = 0  # fills from the store started (exported by chatire.metrics)

    def _dispatch(self, uri: str, seq: int, payload: bytes, ack: Ack | None) -> None:
        subs = self._subs.get(uri)
        if not subs:
            return
        frame: Any = None
        for sub in list(subs.values()):
            if seq <= sub.last_sent or seq in sub.pending:
                continue
            if sub.filling or seq != sub.last_sent + 1:
                sub.pending[seq] = (payload, ack.hold() if ack is not None else None)
                self._catch_up(sub)
                continue
            if frame is None:
                frame = self._frame(uri, seq, payload)
            sub.last_sent = seq
            sub.conn.deliver(frame)
            if sub.pending:
                self._drain(sub)

    def _frame(self, uri: str, seq: int, payload: bytes) -> Any:
        key = (uri, seq)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._remember(uri, seq, payload)
        return frame

    def _remember(self, uri: str, seq: int, payload: bytes) -> Any:
        frame = self._prepare(payload)
        self._frames[(uri, seq)] = frame
        if len(self._frames) > self._frame_cache:
            self._frames.popitem(last=False)
        return frame

    def _drain(self, sub: Subscription) -> None:
        """Send what waits in order; drop what was sent already."""
        while sub.live and sub.pending:
            first = min(sub.pending)
            if first > sub.last_sent + 1:
                return
            payload, ack = sub.pending.pop(first)
            if first == sub.last_sent + 1:
                sub.last_sent = first
                sub.conn.deliver(self._frame(sub.chat, first, payload))
            if ack is not None:
                ack.release()

    def _catch_up(self, sub: Subscription) -> None:
        """Fill from the store whatever lies between last_sent and what is known."""
        if sub.filling or not sub.live:
            return
        self._drain(sub)
        wanted = max(sub.target, max(sub.pending, default=0))
        if sub.last_sent >= wanted:
            return
        sub.filling = True
        self.gap_fills += 1
        Deferred.fromCoroutine(self._fill(sub)).addErrback(
            lambda f: log.failure("gap fill failed", f))

    async def _fill(self, sub: Subscription) -> None:
        try:
            while sub.live:
                self._drain(sub)
                wanted = max(sub.target, max(sub.pending, default=0))
                if sub.last_sent >= wanted:
                    return
                before = sub.last_sent
                page = await self._fetch(sub.chat, before)
                for item in page.items:
                    if sub.live and item.seq == sub.last_sent + 1:
                        sub.last_sent = item.seq
                        frame = self._frames.get((sub.chat, item.seq))
                        if frame is None:  # encode once; the others reuse the frame
                            frame = self._remember(sub.chat, item.seq, item_payload(item))
                        sub.conn.deliver(frame)
                if sub.last_sent == before:
                    self._sweep.check(sub.chat)  # nothing newer yet: the next sweep retries
                    return
        except ChatireError as e:
            self._sweep.check(sub.chat)
            log.warn("gap fill of a chat deferred to the next sweep: {error}", error=e.message)
        finally:
            sub.filling = False
        if sub.live and sub.pending:
            self._drain(sub)

    def _fetch(self, uri: str, after: int) -> Deferred[Timeline]:
        """The timeline after a seq; subscribers at the same point share one query."""
        key = (uri, after)
        waiters = self._fetching.get(key)
        if waiters is not None:
            return waiters.wait()
        waiters = self._fetching[key] = Waiters()
        mine = waiters.wait()

        def fan_out(result: Timeline | Failure) -> None:
            del self._fetching[key]
            waiters.fire(result)

        self.store.events(self._chat_rows[uri], after, self._page_size).addBoth(fan_out)
        return mine

    def _behind(self, uri: str, last_seq: int) -> None:
        """The store has the chat up to last_seq: fill the subscribers behind it."""
        for sub in list(self._subs.get(uri, {}).values()):
            if sub.last_sent < last_seq:
                sub.target = max(sub.target, last_seq)
                self._catch_up(sub)
