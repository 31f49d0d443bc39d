"""The Hub: live delivery on one node — subscriptions, order, gap fill, resume, ack."""

from __future__ import annotations

import json
import secrets
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatire.errors import ChatireError, Forbidden, Invalid, RateLimited
from chatire.frames import (
    CONTROL,
    EPHEMERAL,
    EVENT_PREFIX,
    chats_event,
    deleted_event,
    event_payload,
    item_payload,
    leave_event,
    message_payload,
    read_event,
    revoke_event,
)
from chatire.interfaces import IBus, IStore
from chatire.jsonin import encode
from chatire.model import Chat, Event, Message, Timeline, User, utc_from_timestamp
from chatire.presence import Presence
from chatire.subscription import Ack, PendingCheck, Subscriber, Subscription
from chatire.typing_gate import TypingGate
from chatire.waiters import Waiters

log = Logger()

#: Seconds of control events each sweep reads back from the store (a node whose bus and
#: sweeps both stalled longer than this misses nothing it needs: tokens are checked
#: again at every authentication, memberships at every subscribe and post).
CONTROL_WINDOW = 60.0

class Hub:
    """Delivers every committed message to every local subscriber once, in seq order."""

    def __init__(self, store: IStore, bus: IBus, clock: IReactorTime,
                 prepare: Callable[[bytes], Any], *, sweep_interval: float = 2.0,
                 page_size: int = 200, frame_cache: int = 4096,
                 max_subscriptions: int = 1000, typing_interval: float = 3.0,
                 presence_grace: float = 15.0) -> None:
        self.store = store
        self.bus = bus
        self._clock = clock
        self._prepare = prepare
        self._page_size = page_size
        self._subs: dict[str, dict[Subscriber, Subscription]] = {}
        self._conns: dict[Subscriber, dict[str, Subscription]] = {}
        self._chat_rows: dict[str, Chat] = {}
        # Chats this Hub follows on the bus for subscriptions: it unfollows only
        # these, so no subscriber can unfollow what the node itself needs.
        self._followed: set[str] = set()
        # Closed connections: work still queued for one never brings it back.
        self._closed: weakref.WeakSet[Subscriber] = weakref.WeakSet()
        self._checks: dict[tuple[str, int], list[PendingCheck]] = {}
        self._max_subscriptions = max_subscriptions
        self._typing = TypingGate(clock, typing_interval)
        self._frames: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._frame_cache = frame_cache
        self._fetching: dict[tuple[str, int], Waiters[Timeline]] = {}
        self._sweep = LoopingCall(self.sweep)
        self._sweep.clock = clock
        self._sweep_interval = sweep_interval
        self.publish_failures = 0
        self.gap_fills = 0  # fills from the store started (exported by chatire.metrics)
        self._last_failure_log = float("-inf")
        self._node = secrets.token_hex(8)  # names this node's own control events
        self.presence = Presence(self._node, clock, self._tell_nodes, self._presence_changed,
                                 grace=presence_grace, seen=self._seen)
        self._last_seen_written: dict[int, float] = {}
        self._applied: dict[int, float] = {}  # control events kept in the store, applied
        self._control_read: float | None = None  # when the store's control events were read
        self._sweeps = 0

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.bus.follow(CONTROL)
        self.bus.start(self.on_bus_message, self.on_bus_reconnect)
        if self._sweep_interval > 0:
            self._sweep.start(self._sweep_interval, now=False)
        self.presence.start()

    def stop(self) -> Deferred[None]:
        if self._sweep.running:
            self._sweep.stop()
        self.presence.stop()
        return self.bus.stop()

    # -- presence --------------------------------------------------------------------

    def _tell_nodes(self, event: dict[str, Any]) -> None:
        """A presence change or snapshot of this node, to the others (never stored)."""
        self.bus.publish(CONTROL, EPHEMERAL, encode(event)).addErrback(
            self._publish_failed, CONTROL)

    def _presence_changed(self, uri: str, user: User, online: bool) -> None:
        frame = {"type": "presence", "chat": uri, "user": user.to_json(), "online": online}
        for conn in list(self._subs.get(uri, {})):
            conn.send_json(frame)

    def _seen(self, user_id: int) -> None:
        """A user left this node: note when they were last seen (once a minute at most)."""
        now = self._clock.seconds()
        if now - self._last_seen_written.get(user_id, float("-inf")) < 60.0:
            return
        self._last_seen_written[user_id] = now
        if len(self._last_seen_written) > 100_000:
            self._last_seen_written.clear()
        self.store.touch_seen([user_id], utc_from_timestamp(now)).addErrback(
            lambda f: log.warn("last_seen not written: {error}", error=str(f.value)))

    def connections(self) -> list[Subscriber]:
        return list(self._conns)

    def subscription_count(self) -> int:
        return sum(len(subs) for subs in self._subs.values())

    # -- connections -------------------------------------------------------------------

    def connection_opened(self, conn: Subscriber) -> bool:
        """Register a connection; a closed one is refused (False)."""
        if conn in self._closed:
            return False
        self._conns.setdefault(conn, {})
        return True

    def connection_closed(self, conn: Subscriber) -> None:
        self._closed.add(conn)
        for uri in list(self._conns.get(conn, {})):
            self._drop(conn, uri)
        self._conns.pop(conn, None)

    def is_open(self, conn: Subscriber) -> bool:
        """Whether the connection was not closed (a new one registers on its first subscribe)."""
        return conn not in self._closed

    async def subscribe(self, conn: Subscriber, user: User, uri: str, after: int | None,
                        member_chat: Callable[[User, str], Awaitable[Chat]]) -> None:
        """Follow a chat: reply ``subscribed``, replay from ``after``, then go live.

        Check before effect: nothing is registered or followed on the bus before
        ``member_chat`` (ChatService's membership check, asked by the transport) said
        yes, and a refused subscribe leaves everything (this socket's earlier
        subscription to the chat too) as it was.
        """
        if not self.is_open(conn):
            return  # work queued for a closed connection: it has no effect
        self._check_room(conn, uri)
        check = PendingCheck()
        key = (uri, user.id)
        self._checks.setdefault(key, []).append(check)
        try:
            chat = await member_chat(user, uri)
        finally:
            waiting = self._checks[key]
            waiting.remove(check)
            if not waiting:
                del self._checks[key]
        if check.left:
            raise Forbidden("you are not a member of this chat")
        if after is not None and after > chat.last_seq:
            raise Invalid(f"after: the chat's last seq is {chat.last_seq}")
        if not self.is_open(conn):
            return  # closed while the store answered: no work for it
        self._check_room(conn, uri)
        mine = self._conns.setdefault(conn, {})
        old = mine.get(uri)
        if old is not None:
            self._retire(old)
        else:
            self.presence.subscribed(uri, user)
        sub = Subscription(conn, uri)
        self._subs.setdefault(uri, {})[conn] = sub
        mine[uri] = sub
        if uri not in self._followed:
            self._followed.add(uri)
            self.bus.follow(uri)
        self._chat_rows[uri] = chat
        # A message committed here after the store read the chat is in the frame
        # cache already: fill it from the store now rather than at the next sweep.
        newest = chat.last_seq
        while (uri, newest + 1) in self._frames:
            newest += 1
        sub.last_sent = chat.last_seq if after is None else after
        sub.since = chat.last_seq
        sub.target = newest
        conn.send_json({"type": "subscribed", "chat": uri, "last_seq": chat.last_seq,
                        "online": self.presence.online(uri)})
        sub.filling = False
        self._catch_up(sub)

    def _check_room(self, conn: Subscriber, uri: str) -> None:
        """RateLimited if a new subscription would take the socket past the cap."""
        subs = self._conns.get(conn)
        if (subs is not None and self._max_subscriptions
                and uri not in subs and len(subs) >= self._max_subscriptions):
            raise RateLimited(f"at most {self._max_subscriptions} subscriptions per socket")

    def unsubscribe(self, conn: Subscriber, uri: str) -> bool:
        return self._drop(conn, uri)

    def is_subscribed(self, conn: Subscriber, uri: str) -> bool:
        return uri in self._conns.get(conn, {})

    def _drop(self, conn: Subscriber, uri: str) -> bool:
        sub = self._conns.get(conn, {}).pop(uri, None)
        if sub is None:
            return False
        self._retire(sub)
        if conn.user is not None:
            self.presence.unsubscribed(uri, conn.user)
        subs = self._subs.get(uri)
        if subs is not None:
            subs.pop(conn, None)
            if not subs:
                del self._subs[uri]
                self._chat_rows.pop(uri, None)
                if uri in self._followed:
                    self._followed.discard(uri)
                    self.bus.unfollow(uri)
        return True

    @staticmethod
    def _retire(sub: Subscription) -> None:
        """A subscription ends: it sends nothing more and lets go of its bus deliveries."""
        sub.live = False
        for _, ack in sub.pending.values():
            if ack is not None:
                ack.release()
        sub.pending.clear()

    # -- typing --------------------------------------------------------------------------

    def typing(self, conn: Subscriber, user: User, uri: str) -> None:
        if not self.is_subscribed(conn, uri):
            raise Invalid("subscribe to the chat before sending typing")
        if not self._typing.admit(user.id, uri):
            return  # relayed one lately: drop this one silently, before the bus
        payload = encode({"type": "typing", "chat": uri, "user": user.to_json()})
        self.bus.publish(uri, EPHEMERAL, payload).addErrback(self._publish_failed, uri)

    def _typed(self, uri: str, payload: bytes) -> None:
        try:
            user_id = json.loads(payload)["user"]["id"]
        except (ValueError, KeyError, TypeError):
            return
        frame = self._prepare(payload)
        for conn in list(self._subs.get(uri, {})):
            if conn.user is not None and conn.user.id != user_id:
                conn.deliver(frame)

    # -- messages in -----------------------------------------------------------------------

    def message_committed(self, message: Message) -> None:
        """ChatService committed a message here: publish it, deliver it locally now."""
        # The message ends its author's typing: the next keystroke shows it again.
        self._typing.ended(message.user.id, message.chat)
        payload = message_payload(message)
        self._remember(message.chat, message.seq, payload)
        self.bus.publish(message.chat, message.seq, payload).addErrback(
            self._publish_failed, message.chat)
        self._dispatch(message.chat, message.seq, payload, None)

    def event_committed(self, event: Event) -> None:
        """ChatService committed another kind of event here: the same path as a message.

        The Hub does not care what the event means, only that a message it changes
        must not be replayed from a frame cached before the change.
        """
        if event.target is not None:
            self._frames.pop((event.chat, event.target), None)
        payload = event_payload(event)
        self._remember(event.chat, event.seq, payload)
        self.bus.publish(event.chat, event.seq, payload).addErrback(
            self._publish_failed, event.chat)
        self._dispatch(event.chat, event.seq, payload, None)

    def _forget_changed(self, uri: str, payload: bytes) -> None:
        """An event from another node: drop the cached frame of the message it changes."""
        try:
            target = json.loads(payload).get("target")
        except ValueError:
            return
        if isinstance(target, int):
            self._frames.pop((uri, target), None)

    def _publish_failed(self, failure: Any, uri: str) -> None:
        """Count a failed publish; log one line per quiet spell, not one per message."""
        self.publish_failures += 1
        now = self._clock.seconds()
        if now - self._last_failure_log >= 10.0:
            self._last_failure_log = now
            log.warn("bus publish failed ({count} so far); followers heal from the store: "
                     "{error}", count=self.publish_failures, error=str(failure.value))

    def on_bus_message(self, uri: str, seq: int, payload: bytes,
                       ack: Callable[[], None]) -> None:
        try:
            if uri == CONTROL:
                self._control(payload, from_bus=True)
            elif seq == EPHEMERAL:
                self._typed(uri, payload)
            else:
                if payload.startswith(EVENT_PREFIX):
                    self._forget_changed(uri, payload)
                holder = Ack(ack)
                self._dispatch(uri, seq, payload, holder)
                holder.release()
                return
        except Exception:
            log.failure("bad bus message on {chat}", chat=uri)
        ack()

    def on_bus_reconnect(self) -> None:
        """The bus is (back) up and bound: sweep every followed chat from the store."""
        self.sweep()

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

    # -- ordering and gap fill -------------------------------------------------------------

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
                    return  # the store has nothing newer yet: the next sweep retries
        except ChatireError as e:
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

    def sweep(self) -> Deferred[None]:
        """Compare every followed chat with the store; fill whoever is behind."""
        self._typing.forget_old()
        return Deferred.fromCoroutine(self._sweep_once())

    async def _sweep_once(self) -> None:
        await self._replay_control()
        uris = list(self._subs)
        if not uris:
            return
        try:
            seqs = await self.store.last_seqs(uris)
        except ChatireError:
            return
        for uri, last_seq in seqs.items():
            for sub in list(self._subs.get(uri, {}).values()):
                if sub.last_sent < last_seq:
                    sub.target = max(sub.target, last_seq)
                    self._catch_up(sub)

    # -- control: revocation and membership ------------------------------------------------

    def membership_ended(self, chat_uri: str, user_id: int, reason: str = "left",
                         seq: int | None = None) -> None:
        self._announce(leave_event(chat_uri, user_id, reason, seq), durable=True)

    def chat_deleted(self, chat_uri: str) -> None:
        self._announce(deleted_event(chat_uri), durable=True)
        self.bus.remove(chat_uri)  # its exchange goes: nothing is left on the broker

    def chats_changed(self, user_ids: list[int]) -> None:
        """Nudge these users' sockets to fetch their chat list again (never stored)."""
        if user_ids:
            self._announce(chats_event(user_ids, self._node))

    def read_marked(self, chat_uri: str, user_id: int, seq: int, origin: object) -> None:
        """A user read a chat up to seq: tell their other sockets, here and on every node."""
        self._announce(read_event(chat_uri, user_id, seq, self._node), origin)

    def tokens_revoked(self, token_hashes: list[str]) -> None:
        if token_hashes:
            self._announce(revoke_event(token_hashes), durable=True)

    def _announce(self, event: bytes, origin: object = None, durable: bool = False) -> None:
        """Act on a control event here at once, and tell the other nodes: on the bus, and
        (``durable``: what enforces a sign-out, a leave, a removal or a deletion) in the
        store, where every node's sweep finds it even if the bus lost it."""
        self._control(event, origin)
        self.bus.publish(CONTROL, EPHEMERAL, event).addErrback(self._publish_failed, CONTROL)
        if durable:
            now = utc_from_timestamp(self._clock.seconds())
            self.store.log_control(event.decode(), now).addCallbacks(
                self._mark_applied,
                lambda f: log.warn("control event not kept in the store: {error}",
                                   error=str(f.value)))

    def _mark_applied(self, event_id: int) -> None:
        self._applied[event_id] = self._clock.seconds()

    async def _replay_control(self) -> None:
        """Apply the control events other nodes kept in the store that this node has not
        applied yet: the store, not the bus, is what enforces them."""
        now = self._clock.seconds()
        # From a window before the last read that worked: a store outage longer than the
        # window loses nothing (the store keeps ten windows).
        last = self._control_read if self._control_read is not None else now
        try:
            kept = await self.store.control_since(utc_from_timestamp(last - CONTROL_WINDOW))
        except ChatireError:
            return
        self._control_read = now
        for event_id, event in kept:
            if event_id not in self._applied:
                self._applied[event_id] = now
                try:
                    self._control(event.encode(), from_bus=True)
                except Exception:
                    log.failure("bad control event in the store")
        for event_id, seen in list(self._applied.items()):
            if now - seen > 12 * CONTROL_WINDOW:  # past what the store keeps
                del self._applied[event_id]
        self._sweeps += 1
        if self._sweeps % 30 == 0:  # about once a minute: forget what every node has seen
            self.store.prune_control(utc_from_timestamp(now - 10 * CONTROL_WINDOW)).addErrback(
                lambda f: None)

    def _control(self, payload: bytes, origin: object = None, from_bus: bool = False) -> None:
        event = json.loads(payload)
        if event.get("kind") == "read":
            if from_bus and event.get("node") == self._node:
                return  # our own, back from the bus: its sockets were told already
            uri, user_id = event["chat"], event["user"]
            frame = {"type": "read", "chat": uri, "seq": event["seq"]}
            for conn in list(self._subs.get(uri, {})):
                if conn is not origin and conn.user is not None and conn.user.id == user_id:
                    conn.send_json(frame)
        elif event.get("kind") == "leave":
            uri, user_id = event["chat"], event["user"]
            ended: dict[str, Any] = {"type": "unsubscribed", "chat": uri}
            if event.get("reason", "left") != "left":  # a leave says nothing more (v1)
                ended["reason"] = event["reason"]
            for check in self._checks.get((uri, user_id), ()):
                check.left = True
            seq = event.get("seq")
            for conn, sub in list(self._subs.get(uri, {}).items()):
                if conn.user is not None and conn.user.id == user_id:
                    if isinstance(seq, int) and sub.since >= seq:
                        continue  # made after a later join: this leave is not its end
                    self._drop(conn, uri)
                    conn.send_json(ended)
        elif event.get("kind") == "deleted":
            uri = event["chat"]
            for (chat, _), checks in self._checks.items():
                if chat == uri:
                    for check in checks:
                        check.left = True
            for conn in list(self._subs.get(uri, {})):
                self._drop(conn, uri)
                conn.send_json({"type": "unsubscribed", "chat": uri, "reason": "deleted"})
        elif event.get("kind") == "chats":
            if from_bus and event.get("node") == self._node:
                return  # our own, back from the bus: its sockets were told already
            users = set(event.get("users", ()))
            for conn in list(self._conns):
                if conn.user is not None and conn.user.id in users:
                    conn.send_json({"type": "chats_changed"})
        elif event.get("kind") in ("presence", "presence_snapshot"):
            self.presence.heard(event)
        elif event.get("kind") == "revoke":
            revoked = set(event["tokens"])
            for conn in list(self._conns):
                if conn.token_hash in revoked:
                    conn.close(4001, "token revoked")
