"""The Hub: live delivery on one node — subscriptions, order, gap fill, resume, ack.

The bus brings each commit; the periodic sweep is the safety net for what it lost. A
sweep is one store query for the chats whose ``last_seq`` moved since the previous
sweep's mark (chatire.store.changes), plus the chats to check in full: those subscribed
or left behind by a fill since. The first sweep, and the one after a bus reconnect or a
failed sweep, checks every followed chat and takes a fresh mark.
"""

from __future__ import annotations

import json
import secrets
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatire.control import NodeControl
from chatire.errors import Forbidden, Invalid, RateLimited
from chatire.frames import (
    CONTROL,
    EPHEMERAL,
    EVENT_PREFIX,
    event_payload,
    message_payload,
)
from chatire.interfaces import IBus, IStore
from chatire.jsonin import encode
from chatire.model import Chat, Event, Message, User
from chatire.ordering import Ordering
from chatire.presence import LastSeen, Presence
from chatire.subscription import Ack, PendingCheck, Subscriber, Subscription
from chatire.sweep import Sweep
from chatire.typing_gate import TypingGate

log = Logger()


class Hub(Ordering):
    """Delivers every committed message to every local subscriber once, in seq order.

    The order of each subscription, its gap fill and the frame cache are chatire.ordering's.
    """

    def __init__(self, store: IStore, bus: IBus, clock: IReactorTime,
                 prepare: Callable[[bytes], Any], *, sweep_interval: float = 2.0,
                 page_size: int = 200, frame_cache: int = 4096,
                 max_subscriptions: int = 1000, typing_interval: float = 3.0,
                 presence_grace: float = 15.0) -> None:
        self.store = store
        self.bus = bus
        self._clock = clock
        self._prepare = prepare
        super().__init__(page_size, frame_cache)
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
        self._sweep = Sweep(store, clock, sweep_interval, lambda: self._subs, self._behind,
                            self._before_sweep)
        self.publish_failures = 0
        self._last_failure_log = float("-inf")
        node = secrets.token_hex(8)  # names this node's own control events
        self.control = NodeControl(self, store, bus, clock, node, self._publish_failed)
        self.presence = Presence(node, clock, self.control.tell_nodes, self._presence_changed,
                                 grace=presence_grace, seen=LastSeen(store, clock).left)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.bus.follow(CONTROL)
        self.bus.start(self.on_bus_message, self.on_bus_reconnect)
        self._sweep.start()
        self.presence.start()

    def stop(self) -> Deferred[None]:
        self._sweep.stop()
        self.presence.stop()
        return self.bus.stop()

    # -- presence --------------------------------------------------------------------

    def _presence_changed(self, uri: str, user: User, online: bool) -> None:
        subs = self._subs.get(uri)
        if not subs:
            return
        # Encoded and framed once for the chat's subscribers, not once a socket.
        frame = self._prepare(encode({"type": "presence", "chat": uri, "user": user.to_json(),
                                      "online": online}))
        for conn in list(subs):
            conn.send_frame(frame)

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
        # A commit the read of the chat missed may be older than the mark of a sweep
        # that ran meanwhile: the next sweep checks the chat in full.
        self._sweep.check(uri)
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

    def marked(self, conn: Subscriber, uri: str, seq: int) -> int | None:
        """A socket marked a chat read up to seq: the seq it was sent the chat up to (a
        mark is never told beyond it), or None if it does not follow the chat."""
        sub = self._conns.get(conn, {}).get(uri)
        if sub is None:
            return None
        sub.read_told = max(sub.read_told, min(seq, sub.last_sent))
        return sub.last_sent

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
                self.control.received(payload)
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
        self._sweep.check_all()
        self.sweep()

    # -- the sweep (chatire.sweep) -------------------------------------------------------

    def sweep(self) -> Deferred[None]:
        """Compare the followed chats that changed with the store; fill whoever is behind."""
        return self._sweep.run()

    def _before_sweep(self) -> Deferred[None]:
        self._typing.forget_old()
        return Deferred.fromCoroutine(self.control.replay())

    # -- control: what ChatService tells the node, applied by chatire.control ------------

    def membership_ended(self, chat_uri: str, user_id: int, reason: str = "left",
                         seq: int | None = None) -> None:
        self.control.membership_ended(chat_uri, user_id, reason, seq)

    def chat_deleted(self, chat_uri: str) -> None:
        self.control.chat_deleted(chat_uri)

    def chats_changed(self, user_ids: list[int]) -> None:
        self.control.chats_changed(user_ids)

    def read_marked(self, chat_uri: str, user_id: int, seq: int, origin: object) -> None:
        self.control.read_marked(chat_uri, user_id, seq, origin)

    def tokens_revoked(self, token_hashes: list[str]) -> None:
        self.control.tokens_revoked(token_hashes)

    def subscribers(self, uri: str) -> list[tuple[Subscriber, Subscription]]:
        """The local subscriptions to a chat, as (connection, subscription)."""
        return list(self._subs.get(uri, {}).items())

    def turn_down_checks(self, uri: str, user_id: int | None) -> None:
        """Subscribes to a chat still waiting for ChatService's word (of one user, or of
        everyone) will be refused: the membership or the chat ended meanwhile."""
        for (chat, user), checks in self._checks.items():
            if chat == uri and (user_id is None or user == user_id):
                for check in checks:
                    check.left = True
