"""Sign-outs, leaves, removals and deletions are enforced from the store: a node whose bus
lost them closes or unsubscribes the sockets within a sweep, and a late leave does not end
a subscription made after the user joined again."""

from __future__ import annotations

from twisted.internet.task import Clock

from chatire.auth import token_hash
from chatire.bus.memory import MemoryBroker
from tests.unit.harness import FakeConn, Node, run


def _cut_off() -> tuple[Clock, Node, Node]:
    clock, broker = Clock(), MemoryBroker()
    a = Node(clock, broker)
    b = Node(clock, broker, store=a.store)
    return clock, a, b


def test_a_sign_out_reaches_a_node_whose_bus_is_down_by_its_sweep() -> None:
    clock, a, b = _cut_off()
    alice = a.user("alice")
    token, _ = run(a.chats.sign_in("alice", "correct horse", "192.0.2.1"))
    chat = a.chat(alice)
    on_b = FakeConn(alice)
    on_b.token_hash = token_hash(token)
    run(b.subscribe(on_b, alice, chat.uri, None))
    b.bus.stop()  # b hears nothing on the bus from now on
    run(a.chats.sign_out(token))
    clock.advance(0.1)
    assert on_b.closed is None  # the bus did not carry it
    clock.advance(2.0)  # b's next sweep reads it from the store
    assert on_b.closed == (4001, "token revoked")


def test_a_leave_and_a_removal_reach_a_node_whose_bus_is_down() -> None:
    clock, a, b = _cut_off()
    alice, bob = a.user("alice"), a.user("bob")
    chat = a.chat(alice, bob)
    bob_on_b = FakeConn(bob)
    run(b.subscribe(bob_on_b, bob, chat.uri, None))
    b.bus.stop()
    run(a.chats.leave(bob, chat.uri))
    clock.advance(2.0)
    assert {"type": "unsubscribed", "chat": chat.uri} in bob_on_b.control
    # Bob joins again and subscribes on b: the old leave, read again, leaves him be.
    run(a.chats.join(bob, chat.uri))
    again = FakeConn(bob)
    run(b.subscribe(again, bob, chat.uri, None))
    clock.advance(2.0)
    assert b.hub.is_subscribed(again, chat.uri)


def test_without_the_store_log_the_cut_off_node_would_not_know() -> None:
    """The guard of the two tests above: with the sweep off, nothing reaches b."""
    clock, broker = Clock(), MemoryBroker()
    a = Node(clock, broker)
    b = Node(clock, broker, store=a.store, sweep_interval=0)
    alice, bob = a.user("alice"), a.user("bob")
    chat = a.chat(alice, bob)
    bob_on_b = FakeConn(bob)
    run(b.subscribe(bob_on_b, bob, chat.uri, None))
    b.bus.stop()
    run(a.chats.leave(bob, chat.uri))
    clock.advance(10.0)
    assert b.hub.is_subscribed(bob_on_b, chat.uri)


def test_a_store_outage_longer_than_the_window_loses_no_control_event() -> None:
    """Reads resume from the last one that worked, not from a fixed window back."""
    from twisted.internet.defer import fail

    from chatire.errors import Unavailable

    clock, a, b = _cut_off()
    alice, bob = a.user("alice"), a.user("bob")
    chat = a.chat(alice, bob)
    bob_on_b = FakeConn(bob)
    run(b.subscribe(bob_on_b, bob, chat.uri, None))
    clock.advance(2.0)  # b has read the log once
    b.bus.stop()
    reading = b.hub.store.control_since
    b.hub.store.control_since = lambda since: fail(Unavailable("down"))  # type: ignore
    run(a.chats.leave(bob, chat.uri))
    for _ in range(60):  # two minutes without the store on b
        clock.advance(2.0)
    assert b.hub.is_subscribed(bob_on_b, chat.uri)
    b.hub.store.control_since = reading  # type: ignore
    clock.advance(2.0)
    assert not b.hub.is_subscribed(bob_on_b, chat.uri)
