"""The Hub's ordering rules: duplicates, gaps, resume seams, ack, sweeps, control events."""

from __future__ import annotations

import json

from twisted.internet.task import Clock

from chatire.bus.memory import MemoryBroker
from chatire.frames import message_payload
from tests.unit.harness import FakeConn, Node, run


def setup() -> tuple[Clock, Node]:
    clock = Clock()
    return clock, Node(clock, MemoryBroker())


def test_live_messages_arrive_once_in_order_and_bus_echo_is_dropped() -> None:
    clock, node = setup()
    alice, bob = node.user("alice"), node.user("bob")
    chat = node.chat(alice, bob)
    conn = FakeConn(bob)
    run(node.hub.subscribe(conn, bob, chat.uri, None))
    assert conn.control == [{"type": "subscribed", "chat": chat.uri, "last_seq": 0}]
    for i in range(3):
        run(node.chats.post(alice, chat.uri, f"m{i}", None))
    clock.advance(0)  # the memory bus echoes every message back on the next turn
    assert conn.seqs() == [1, 2, 3]


def test_duplicate_and_old_bus_deliveries_are_dropped_and_acked() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    conn = FakeConn(alice)
    run(node.hub.subscribe(conn, alice, chat.uri, None))
    (message,) = node.commit_silently(chat, alice, 1)
    acks: list[int] = []
    for _ in range(3):
        node.hub.on_bus_message(chat.uri, 1, message_payload(message), lambda: acks.append(1))
    assert conn.seqs() == [1]
    assert len(acks) == 3


def test_a_gap_is_filled_from_the_store_before_the_later_message() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    conn = FakeConn(alice)
    run(node.hub.subscribe(conn, alice, chat.uri, None))
    messages = node.commit_silently(chat, alice, 4)
    acked: list[int] = []
    node.hub.on_bus_message(chat.uri, 4, message_payload(messages[3]), lambda: acked.append(4))
    node.hub.on_bus_message(chat.uri, 2, message_payload(messages[1]), lambda: acked.append(2))
    assert conn.seqs() == [1, 2, 3, 4]
    assert sorted(acked) == [2, 4]


def test_out_of_order_arrivals_are_held_back_until_predecessors_arrive() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    conn = FakeConn(alice)
    run(node.hub.subscribe(conn, alice, chat.uri, None))
    messages = node.commit_silently(chat, alice, 3)
    node.hub.on_bus_message(chat.uri, 3, message_payload(messages[2]), lambda: None)
    node.hub.on_bus_message(chat.uri, 1, message_payload(messages[0]), lambda: None)
    node.hub.on_bus_message(chat.uri, 2, message_payload(messages[1]), lambda: None)
    assert conn.seqs() == [1, 2, 3]


def test_resume_with_after_has_no_gap_and_no_duplicate_at_the_seam() -> None:
    clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    node.commit_silently(chat, alice, 5)
    conn = FakeConn(alice)
    run(node.hub.subscribe(conn, alice, chat.uri, 2))
    assert conn.control[0] == {"type": "subscribed", "chat": chat.uri, "last_seq": 5}
    assert conn.seqs() == [3, 4, 5]
    run(node.chats.post(alice, chat.uri, "live", None))
    clock.advance(0)
    assert conn.seqs() == [3, 4, 5, 6]


def test_live_arrivals_during_replay_are_buffered_then_flushed_in_order() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    messages = node.commit_silently(chat, alice, 3)
    conn = FakeConn(alice)
    # The subscription registers before its membership check completes; a live
    # arrival in that window must wait for the replay, not jump ahead of it.
    node.hub.bus.follow(chat.uri)
    subscribing = node.hub.subscribe(conn, alice, chat.uri, 0)
    node.hub.on_bus_message(chat.uri, 3, message_payload(messages[2]), lambda: None)
    run(subscribing)
    assert conn.seqs() == [1, 2, 3]


def test_after_beyond_last_seq_and_non_members_are_refused() -> None:
    _clock, node = setup()
    alice, eve = node.user("alice"), node.user("eve")
    chat = node.chat(alice)
    conn = FakeConn(alice)
    for user, after, code in ((alice, 1, "invalid"), (eve, None, "forbidden")):
        try:
            run(node.hub.subscribe(conn, user, chat.uri, after))
        except Exception as e:
            assert getattr(e, "code", None) == code
        else:
            raise AssertionError("subscribe was not refused")
    assert node.hub.subscription_count() == 0


def test_the_periodic_sweep_delivers_what_never_came_over_the_bus() -> None:
    clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    conn = FakeConn(alice)
    run(node.hub.subscribe(conn, alice, chat.uri, None))
    node.commit_silently(chat, alice, 2)
    assert conn.seqs() == []
    clock.advance(2.0)
    assert conn.seqs() == [1, 2]


def test_two_nodes_on_one_broker_deliver_across() -> None:
    clock, broker = Clock(), MemoryBroker()
    a = Node(clock, broker)
    b = Node(clock, broker, store=a.store)
    alice, bob = a.user("alice"), a.user("bob")
    chat = a.chat(alice, bob)
    on_a, on_b = FakeConn(alice), FakeConn(bob)
    run(a.hub.subscribe(on_a, alice, chat.uri, None))
    run(b.hub.subscribe(on_b, bob, chat.uri, None))
    for i in range(5):
        run(a.chats.post(alice, chat.uri, f"m{i}", None))
    clock.advance(0)
    assert on_a.seqs() == on_b.seqs() == [1, 2, 3, 4, 5]


def test_typing_reaches_other_users_only() -> None:
    clock, node = setup()
    alice, bob = node.user("alice"), node.user("bob")
    chat = node.chat(alice, bob)
    conn_a, conn_b = FakeConn(alice), FakeConn(bob)
    run(node.hub.subscribe(conn_a, alice, chat.uri, None))
    run(node.hub.subscribe(conn_b, bob, chat.uri, None))
    node.hub.typing(conn_a, alice, chat.uri)
    clock.advance(0)
    assert [json.loads(f)["type"] for f in conn_b.frames] == ["typing"]
    assert json.loads(conn_b.frames[0])["user"]["id"] == alice.id
    assert conn_a.frames == []


def test_leaving_ends_the_subscription_and_revoking_closes_the_socket() -> None:
    _clock, node = setup()
    alice, bob = node.user("alice"), node.user("bob")
    chat = node.chat(alice, bob)
    conn = FakeConn(bob)
    run(node.hub.subscribe(conn, bob, chat.uri, None))
    run(node.chats.leave(bob, chat.uri))
    assert conn.control[-1] == {"type": "unsubscribed", "chat": chat.uri}
    assert not node.hub.is_subscribed(conn, chat.uri)
    token, _ = run(node.chats.sign_in("bob", "correct horse", "192.0.2.1"))
    from chatire.auth import token_hash

    conn.token_hash = token_hash(token)
    node.hub.connection_opened(conn)
    run(node.chats.sign_out(token))
    assert conn.closed is not None and conn.closed[0] == 4001


def test_a_delivery_behind_a_gap_is_acked_only_once_sent() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    conn = FakeConn(alice)
    run(node.hub.subscribe(conn, alice, chat.uri, None))
    messages = node.commit_silently(chat, alice, 2)
    acked: list[int] = []
    sub = node.hub._conns[conn][chat.uri]
    sub.filling = True  # as if a store read were in flight
    node.hub.on_bus_message(chat.uri, 2, message_payload(messages[1]), lambda: acked.append(2))
    assert acked == [] and conn.seqs() == []
    sub.filling = False
    node.hub._catch_up(sub)
    assert conn.seqs() == [1, 2] and acked == [2]


def test_a_closed_connection_leaves_no_subscription_behind() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    chats = [node.chat(alice) for _ in range(3)]
    conn = FakeConn(alice)
    node.hub.connection_opened(conn)
    for chat in chats:
        run(node.hub.subscribe(conn, alice, chat.uri, None))
    assert node.hub.subscription_count() == 3
    node.hub.connection_closed(conn)
    assert node.hub.subscription_count() == 0 and node.hub.connections() == []
    assert node.bus._followed == {"_control"}
