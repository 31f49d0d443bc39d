"""The control channel of one node: node-wide events (sign-outs, leaves, removals,
deletions, read marks, chat-list nudges, presence) sent, kept in the store and applied."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatire.errors import ChatireError
from chatire.frames import (
    chats_event,
    deleted_event,
    leave_event,
    read_event,
    revoke_event,
)
from chatire.interfaces import IBus, IStore
from chatire.jsonin import encode
from chatire.model import utc_from_timestamp
from chatire.outbox import ControlOutbox

if TYPE_CHECKING:
    from chatire.delivery import Hub

log = Logger()

#: Seconds of control events each sweep reads back from the store before its last good
#: read (tokens are checked again at every authentication, memberships at every
#: subscribe and post, so what is older than the store keeps matters no more).
CONTROL_WINDOW = 60.0


class NodeControl:
    """Sends this node's control events (on the bus; the enforcing ones in the store too)
    and applies every node's to this node's connections, through the Hub."""

    def __init__(self, hub: Hub, store: IStore, bus: IBus, clock: IReactorTime, node: str,
                 publish_failed: Callable[[Any, str], None]) -> None:
        self._hub = hub
        self._store = store
        self._bus = bus
        self._clock = clock
        self.node = node  # names this node's own events
        self.outbox = ControlOutbox(bus, node, publish_failed)
        self._applied: dict[int, float] = {}  # events kept in the store, applied here
        self._read: float | None = None  # when the store's events were last read
        self._reads = 0
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}

    def handle(self, kind: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Let another part of the node act on one kind of event (never stored)."""
        self._handlers[kind] = handler

    def announce(self, event: dict[str, Any]) -> None:
        """An event of a kind some part handles: acted on here at once, and on every node."""
        self._announce(encode(event))

    # -- what ChatService tells the Hub ---------------------------------------------------

    def membership_ended(self, chat_uri: str, user_id: int, reason: str = "left",
                         seq: int | None = None) -> None:
        self._announce(leave_event(chat_uri, user_id, reason, seq), durable=True)

    def chat_deleted(self, chat_uri: str) -> None:
        self._announce(deleted_event(chat_uri), durable=True)
        self._bus.remove(chat_uri)  # its exchange goes: nothing is left on the broker

    def chats_changed(self, user_ids: list[int]) -> None:
        """Nudge these users' sockets to fetch their chat list again (never stored)."""
        if user_ids:
            self._announce(chats_event(user_ids, self.node))

    def read_marked(self, chat_uri: str, user_id: int, seq: int, origin: object) -> None:
        """A user read a chat up to seq: tell their other sockets, here and on every node."""
        self._announce(read_event(chat_uri, user_id, seq, self.node), origin)

    def tokens_revoked(self, token_hashes: list[str]) -> None:
        if token_hashes:
            self._announce(revoke_event(token_hashes), durable=True)

    def tell_nodes(self, event: dict[str, Any]) -> None:
        """An event for the other nodes only (presence: never stored, not applied here)."""
        self._publish(encode(event))

    # -- sending and keeping ----------------------------------------------------------------

    def _publish(self, event: bytes) -> None:
        self.outbox.send(event)

    def _announce(self, event: bytes, origin: object = None, durable: bool = False) -> None:
        """Act on an event here at once, and tell the other nodes: on the bus, and
        (``durable``: what enforces a sign-out, a leave, a removal or a deletion) in the
        store, where every node's sweep finds it even if the bus lost it."""
        self.apply(event, origin)
        self._publish(event)
        if durable:
            now = utc_from_timestamp(self._clock.seconds())
            self._store.log_control(event.decode(), now).addCallbacks(
                self._mark_applied,
                lambda f: log.warn("control event not kept in the store: {error}",
                                   error=str(f.value)))

    def _mark_applied(self, event_id: int) -> None:
        self._applied[event_id] = self._clock.seconds()

    async def replay(self) -> None:
        """Apply the events other nodes kept in the store that this node has not applied
        yet (each sweep): the store, not the bus, is what enforces them."""
        now = self._clock.seconds()
        # From a window before the last read that worked: a store outage longer than the
        # window loses nothing (the store keeps ten windows).
        last = self._read if self._read is not None else now
        try:
            kept = await self._store.control_since(utc_from_timestamp(last - CONTROL_WINDOW))
        except ChatireError:
            return
        self._read = now
        for event_id, event in kept:
            if event_id not in self._applied:
                self._applied[event_id] = now
                try:
                    self.apply(event.encode(), from_bus=True)
                except Exception:
                    log.failure("bad control event in the store")
        for event_id, seen in list(self._applied.items()):
            if now - seen > 12 * CONTROL_WINDOW:  # past what the store keeps
                del self._applied[event_id]
        self._reads += 1
        if self._reads % 30 == 0:  # about once a minute: forget what every node has seen
            self._store.prune_control(
                utc_from_timestamp(now - 10 * CONTROL_WINDOW)).addErrback(lambda f: None)

    # -- applying -----------------------------------------------------------------------------

    def received(self, payload: bytes) -> None:
        """A control message from the bus: a batch of events from a node (this node's own
        batches are dropped unparsed: it acted on them already), or one event alone (as
        ``chatire admin`` sends them)."""
        if self.outbox.is_own(payload):
            return
        body = json.loads(payload)
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            self._act(body, None, from_bus=True)
            return
        for event in events:
            try:
                self._act(event, None, from_bus=True)
            except Exception:
                log.failure("bad control event in a batch from the bus")

    def apply(self, payload: bytes, origin: object = None, from_bus: bool = False) -> None:
        """Act on one event on this node's connections (``from_bus``: it came from the bus or
        the store, and may be this node's own)."""
        self._act(json.loads(payload), origin, from_bus)

    def _act(self, event: dict[str, Any], origin: object, from_bus: bool) -> None:
        kind = event.get("kind")
        if from_bus and kind in ("read", "chats") and event.get("node") == self.node:
            return  # our own, back from the bus: its sockets were told already
        hub = self._hub
        if kind == "read":
            uri, user_id = event["chat"], event["user"]
            seq = event["seq"]
            frame = {"type": "read", "chat": uri, "seq": seq}
            for conn, sub in hub.subscribers(uri):
                if conn is not origin and conn.user is not None and conn.user.id == user_id:
                    if seq < sub.read_told:
                        continue  # it knows a later mark: a read frame never goes back
                    sub.read_told = seq
                    conn.send_json(frame)
        elif kind == "leave":
            uri, user_id, seq = event["chat"], event["user"], event.get("seq")
            ended: dict[str, Any] = {"type": "unsubscribed", "chat": uri}
            if event.get("reason", "left") != "left":  # a leave says nothing more (v1)
                ended["reason"] = event["reason"]
            hub.turn_down_checks(uri, user_id)
            for conn, sub in hub.subscribers(uri):
                if conn.user is not None and conn.user.id == user_id:
                    if isinstance(seq, int) and sub.since >= seq:
                        continue  # made after a later join: this leave is not its end
                    hub.unsubscribe(conn, uri)
                    conn.send_json(ended)
        elif kind == "deleted":
            uri = event["chat"]
            hub.turn_down_checks(uri, None)
            for conn, _ in hub.subscribers(uri):
                hub.unsubscribe(conn, uri)
                conn.send_json({"type": "unsubscribed", "chat": uri, "reason": "deleted"})
        elif kind == "chats":
            users = set(event.get("users", ()))
            for conn in hub.connections():
                if conn.user is not None and conn.user.id in users:
                    conn.send_json({"type": "chats_changed"})
        elif kind in self._handlers:
            self._handlers[kind](event)
        elif kind in ("presence", "presence_snapshot"):
            hub.presence.heard(event)
        elif kind == "revoke":
            revoked = set(event["tokens"])
            for conn in hub.connections():
                if conn.token_hash in revoked:
                    conn.close(4001, "token revoked")
