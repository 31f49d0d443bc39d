"""Presence: who is online in which chat, counted in memory on each daemon and shared on
the control channel as changes plus a periodic snapshot a node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatire.interfaces import IStore
from chatire.model import User, utc_from_timestamp

log = Logger()

#: Seconds between a node's snapshots; a node silent for EXPIRY_SNAPSHOTS of them is gone.
SNAPSHOT_INTERVAL = 30.0
EXPIRY_SNAPSHOTS = 2  # silent for 60 s, checked every 30 s: offline within 90 s

#: ``changed(chat_uri, user, online)``: a user's presence in a chat changed (all nodes).
Changed = Callable[[str, User, bool], None]
#: ``announce(event)``: send a control event to the other nodes.
Announce = Callable[[dict[str, Any]], None]


class Presence:
    """Counts this node's subscriptions per (chat, user); knows which other nodes have
    the user online; tells ``changed`` when the whole cluster's answer changes.

    A user is online in a chat while any node has one of their sockets subscribed to it,
    counting a node's last socket as still there for ``grace`` seconds (a reload shows no
    change). Broker traffic: one event when a node's answer for (chat, user) changes, and
    one snapshot a node every SNAPSHOT_INTERVAL seconds; nothing per socket, nothing per
    member.
    """

    def __init__(self, node: str, clock: IReactorTime, announce: Announce, changed: Changed,
                 grace: float = 15.0, snapshot_interval: float = SNAPSHOT_INTERVAL,
                 seen: Callable[[int], None] | None = None) -> None:
        self._node = node
        self._seen = seen
        self._clock = clock
        self._announce = announce
        self._changed = changed
        self._grace = grace
        self._expiry = snapshot_interval * EXPIRY_SNAPSHOTS
        self._local: dict[tuple[str, int], int] = {}  # sockets here
        self._leaving: dict[tuple[str, int], IDelayedCall] = {}  # last socket gone, in grace
        self._users: dict[int, User] = {}
        # Other nodes: node -> (when last heard, the (chat, user) pairs online there)
        self._remote: dict[str, tuple[float, set[tuple[str, int]]]] = {}
        self._by_chat: dict[str, set[int]] = {}  # users online here, by chat
        self._remote_by_chat: dict[tuple[str, str], set[int]] = {}  # (node, chat) -> users
        self._snapshots = LoopingCall(self._snapshot)
        self._snapshots.clock = clock
        self._snapshot_interval = snapshot_interval

    def start(self) -> None:
        if self._snapshot_interval > 0:
            self._snapshots.start(self._snapshot_interval, now=False)

    def stop(self) -> None:
        if self._snapshots.running:
            self._snapshots.stop()
        for call in self._leaving.values():
            if call.active():
                call.cancel()
        self._leaving.clear()

    # -- this node's sockets ------------------------------------------------------------

    def here(self, chat: str, user: User) -> bool:
        """Whether this node counts the user online in the chat (grace included)."""
        key = (chat, user.id)
        return key in self._local or key in self._leaving

    def online(self, chat: str) -> list[int]:
        """The ids of the users online in a chat, on any node (the chat's own entries
        only: a subscribe costs the same however many chats the node follows)."""
        ids = set(self._by_chat.get(chat, ()))
        for node in self._remote:
            ids |= self._remote_by_chat.get((node, chat), set())
        return sorted(ids)

    def _index(self, chat: str, user_id: int) -> None:
        """Keep _by_chat in step with _local and _leaving for one (chat, user)."""
        key = (chat, user_id)
        if key in self._local or key in self._leaving:
            self._by_chat.setdefault(chat, set()).add(user_id)
        else:
            users = self._by_chat.get(chat)
            if users is not None:
                users.discard(user_id)
                if not users:
                    del self._by_chat[chat]

    def _index_remote(self, node: str, added: set[tuple[str, int]],
                      removed: set[tuple[str, int]]) -> None:
        """Keep one node's per-chat index in step with what it added and removed."""
        for chat, user_id in removed:
            users = self._remote_by_chat.get((node, chat))
            if users is not None:
                users.discard(user_id)
                if not users:
                    del self._remote_by_chat[(node, chat)]
        for chat, user_id in added:
            self._remote_by_chat.setdefault((node, chat), set()).add(user_id)

    def is_online(self, chat: str, user_id: int) -> bool:
        return user_id in self.online(chat)

    def subscribed(self, chat: str, user: User) -> None:
        """One more socket of the user follows the chat here."""
        key = (chat, user.id)
        self._users[user.id] = user
        pending = self._leaving.pop(key, None)
        if pending is not None and pending.active():
            pending.cancel()
            self._local[key] = 1  # back within the grace: no change anywhere
            return
        count = self._local.get(key, 0)
        self._local[key] = count + 1
        self._index(chat, user.id)
        if count == 0:
            was = self._elsewhere(key)
            self._announce({"kind": "presence", "node": self._node, "chat": chat,
                            "user": user.to_json(), "online": True})
            if not was:
                self._changed(chat, user, True)

    def unsubscribed(self, chat: str, user: User) -> None:
        """A socket of the user stopped following the chat here."""
        key = (chat, user.id)
        count = self._local.get(key, 0)
        if count > 1:
            self._local[key] = count - 1
            return
        if count == 1:
            del self._local[key]
            self._leaving[key] = self._clock.callLater(self._grace, self._gone, key)
            self._index(chat, user.id)

    def _gone(self, key: tuple[str, int]) -> None:
        """The grace ran out with no socket back: this node no longer has the user."""
        self._leaving.pop(key, None)
        chat, user_id = key
        self._index(chat, user_id)
        user = self._users.get(user_id)
        if user is None:
            return
        self._announce({"kind": "presence", "node": self._node, "chat": chat,
                        "user": user.to_json(), "online": False})
        if self._seen is not None:
            self._seen(user_id)
        if not self._elsewhere(key):
            self._changed(chat, user, False)

    def _elsewhere(self, key: tuple[str, int]) -> bool:
        return any(key in pairs for _, pairs in self._remote.values())

    def _here_now(self, key: tuple[str, int]) -> bool:
        return key in self._local or key in self._leaving

    # -- other nodes --------------------------------------------------------------------

    def _snapshot(self) -> None:
        self._expire()
        pairs = sorted({*self._local, *self._leaving})
        self._announce({"kind": "presence_snapshot", "node": self._node,
                        "online": [[chat, self._users[user].to_json()] for chat, user in pairs
                                   if user in self._users]})

    def heard(self, event: dict[str, Any]) -> None:
        """A presence event or snapshot from the control channel (our own are ignored).

        An event costs O(1), a snapshot O(that node's pairs): nothing is rescanned.
        """
        node = event.get("node")
        if not isinstance(node, str) or node == self._node:
            return
        now = self._clock.seconds()
        _, pairs = self._remote.get(node, (now, set()))
        if event.get("kind") == "presence":
            user = _user(event["user"])
            self._users.setdefault(user.id, user)
            key = (event["chat"], user.id)
            online = bool(event.get("online"))
            added = {key} if online and key not in pairs else set()
            removed = {key} if not online and key in pairs else set()
            (pairs.add if online else pairs.discard)(key)
        else:  # a snapshot: that node's whole answer now
            fresh: set[tuple[str, int]] = set()
            for chat, user_json in event.get("online", ()):
                user = _user(user_json)
                self._users.setdefault(user.id, user)
                fresh.add((chat, user.id))
            added, removed = fresh - pairs, pairs - fresh
            pairs = fresh
        self._remote[node] = (now, pairs)
        self._index_remote(node, added, removed)
        self._compare(added, removed, node)
        self._expire()

    def _compare(self, added: set[tuple[str, int]], removed: set[tuple[str, int]],
                 node: str) -> None:
        """Tell of every (chat, user) whose cluster-wide answer a node's change flipped."""
        for key in added:
            if not self._here_now(key) and not self._elsewhere_but(key, node):
                self._changed(key[0], self._users[key[1]], True)
        for key in removed:
            if not self._here_now(key) and not self._elsewhere(key):
                self._changed(key[0], self._users[key[1]], False)

    def _elsewhere_but(self, key: tuple[str, int], node: str) -> bool:
        return any(key in pairs for other, (_, pairs) in self._remote.items() if other != node)

    def _expire(self) -> None:
        """Forget the nodes that stopped sending snapshots (a crashed daemon's users)."""
        now = self._clock.seconds()
        for node, (heard, pairs) in list(self._remote.items()):
            if now - heard > self._expiry:
                del self._remote[node]
                self._index_remote(node, set(), pairs)
                self._compare(set(), pairs, node)


class LastSeen:
    """Writes when a user was last online, as they leave a node: once a minute at most."""

    def __init__(self, store: IStore, clock: IReactorTime, every: float = 60.0) -> None:
        self._store = store
        self._clock = clock
        self._every = every
        self._written: dict[int, float] = {}

    def left(self, user_id: int) -> None:
        now = self._clock.seconds()
        if now - self._written.get(user_id, float("-inf")) < self._every:
            return
        self._written[user_id] = now
        if len(self._written) > 100_000:
            self._written.clear()
        self._store.touch_seen([user_id], utc_from_timestamp(now)).addErrback(
            lambda f: log.warn("last_seen not written: {error}", error=str(f.value)))


def _user(data: dict[str, Any]) -> User:
    return User(int(data["id"]), str(data["username"]), str(data["display_name"]))
