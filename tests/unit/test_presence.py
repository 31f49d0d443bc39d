"""Presence across nodes on a Clock: one presence however many sockets and nodes, no change
for a reload within the grace, offline by expiry when a node dies, O(1) bus traffic."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from chatire.bus.memory import MemoryBroker, MemoryBus
from chatire.frames import CONTROL
from tests.unit.harness import FakeConn, Node, run


def _presence(conn: FakeConn) -> list[tuple[int, bool]]:
    return [(f["user"]["id"], f["online"]) for f in conn.control if f["type"] == "presence"]


def _two_nodes() -> tuple[Clock, Node, Node, Any, Any, Any]:
    clock, broker = Clock(), MemoryBroker()
    a = Node(clock, broker)
    b = Node(clock, broker, store=a.store)
    alice, bob = a.user("alice"), a.user("bob")
    chat = a.chat(alice, bob)
    return clock, a, b, alice, bob, chat


def test_a_user_on_two_nodes_is_one_presence_and_leaves_after_the_grace() -> None:
    clock, a, b, alice, bob, chat = _two_nodes()
    watcher = FakeConn(alice)
    run(a.subscribe(watcher, alice, chat.uri, None))
    on_a, on_b, again_b = FakeConn(bob), FakeConn(bob), FakeConn(bob)
    run(a.subscribe(on_a, bob, chat.uri, None))
    clock.advance(0)
    run(b.subscribe(on_b, bob, chat.uri, None))
    run(b.subscribe(again_b, bob, chat.uri, None))
    clock.advance(0)
    assert _presence(watcher) == [(bob.id, True)]  # once, though on two nodes
    assert on_b.control[0]["online"] == [alice.id, bob.id]
    for conn in (on_b, again_b):
        b.hub.connection_closed(conn)
    clock.advance(20)  # past b's grace: a still has bob
    assert _presence(watcher) == [(bob.id, True)]
    a.hub.unsubscribe(on_a, chat.uri)
    clock.advance(14)
    assert _presence(watcher) == [(bob.id, True)]  # within the grace: still online
    clock.advance(2)
    assert _presence(watcher) == [(bob.id, True), (bob.id, False)]
    assert a.hub.presence.online(chat.uri) == b.hub.presence.online(chat.uri) == [alice.id]


def test_a_reload_within_the_grace_shows_no_change_and_sends_nothing() -> None:
    clock, a, b, alice, bob, chat = _two_nodes()
    watcher = FakeConn(alice)
    run(b.subscribe(watcher, alice, chat.uri, None))
    first = FakeConn(bob)
    run(a.subscribe(first, bob, chat.uri, None))
    clock.advance(0)
    routed: list[bytes] = []  # every control message from now on
    spy = MemoryBus(clock, a.hub.bus._broker)  # type: ignore[attr-defined]
    spy.start(lambda uri, seq, payload, ack: routed.append(payload), lambda: None)
    spy.follow(CONTROL)
    a.hub.connection_closed(first)
    clock.advance(3)
    second = FakeConn(bob)  # the reloaded page
    run(a.subscribe(second, bob, chat.uri, None))
    clock.advance(30)
    assert _presence(watcher) == [(bob.id, True)]
    assert [p for p in routed if b'"kind":"presence"' in p] == []  # only snapshots went out


def test_a_dead_nodes_users_go_offline_within_90_seconds() -> None:
    clock, a, b, alice, bob, chat = _two_nodes()
    watcher = FakeConn(alice)
    run(a.subscribe(watcher, alice, chat.uri, None))
    run(b.subscribe(FakeConn(bob), bob, chat.uri, None))
    clock.advance(0)
    assert _presence(watcher) == [(bob.id, True)]
    b.hub.presence.stop()  # b dies: no goodbye, no more snapshots
    b.bus.stop()
    for _ in range(60):
        clock.advance(1)
    assert _presence(watcher) == [(bob.id, True)]  # a missed snapshot is not death
    for _ in range(30):
        clock.advance(1)
    assert _presence(watcher) == [(bob.id, True), (bob.id, False)]


def test_the_per_chat_index_follows_events_snapshots_and_expiry() -> None:
    from chatire.model import User
    from chatire.presence import Presence

    clock = Clock()
    told: list[tuple[str, int, bool]] = []
    here = Presence("here", clock, lambda event: None,
                    lambda chat, user, online: told.append((chat, user.id, online)))
    here.start()
    ann, ben = User(1, "ann", "Ann"), User(2, "ben", "Ben")
    here.subscribed("c1", ann)
    here.heard({"kind": "presence", "node": "n2", "chat": "c2", "user": ben.to_json(),
                "online": True})
    assert (here.online("c1"), here.online("c2"), here.online("c3")) == ([1], [2], [])
    here.heard({"kind": "presence_snapshot", "node": "n2",
                "online": [["c1", ben.to_json()], ["c3", ben.to_json()]]})
    assert (here.online("c1"), here.online("c2"), here.online("c3")) == ([1, 2], [], [2])
    assert told[:2] == [("c1", 1, True), ("c2", 2, True)]
    assert sorted(told[2:]) == [("c1", 2, True), ("c2", 2, False), ("c3", 2, True)]
    clock.advance(91)  # n2 fell silent: expired
    assert (here.online("c1"), here.online("c3")) == ([1], [])
    here.unsubscribed("c1", ann)
    assert here.online("c1") == [1]  # within the grace
    clock.advance(16)
    assert here.online("c1") == []


def test_a_change_is_encoded_once_for_all_the_chats_subscribers() -> None:
    """Presence frames go to every subscriber of the chat: one frame for all of them,
    not an encode and a framing a socket (most of a change's cost past the bus)."""
    clock, a, _, alice, bob, chat = _two_nodes()
    watchers = [FakeConn(alice) for _ in range(3)]
    for watcher in watchers:
        run(a.subscribe(watcher, alice, chat.uri, None))
    run(a.subscribe(FakeConn(bob), bob, chat.uri, None))
    clock.advance(0)
    frames = [w.shared[-1] for w in watchers]
    assert all(frame is frames[0] for frame in frames)
    assert [_presence(w) for w in watchers] == [[(bob.id, True)]] * 3

