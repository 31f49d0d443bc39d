"""The Hub's ordering rules: duplicates, gaps, resume seams, ack, sweeps, control events."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from chatire.bus.memory import MemoryBroker, MemoryBus
from chatire.errors import ChatireError
from chatire.frames import CONTROL, message_payload
from chatire.model import Chat, User
from tests.unit.harness import FakeConn, Node, run


def setup() -> tuple[Clock, Node]:
    clock = Clock()
    return clock, Node(clock, MemoryBroker())


def test_live_messages_arrive_once_in_order_and_bus_echo_is_dropped() -> None:
    clock, node = setup()
    alice, bob = node.user("alice"), node.user("bob")
    chat = node.chat(alice, bob)
    conn = FakeConn(bob)
    run(node.subscribe(conn, bob, chat.uri, None))
    # Bob's join is the chat's first event (seq 1); the messages come after it.
    assert conn.control == [{"type": "subscribed", "chat": chat.uri, "last_seq": 1,
                             "online": [bob.id]}]
    for i in range(3):
        run(node.chats.post(alice, chat.uri, f"m{i}", None))
    clock.advance(0)  # the memory bus echoes every message back on the next turn
    assert conn.seqs() == [2, 3, 4]


def test_duplicate_and_old_bus_deliveries_are_dropped_and_acked() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    conn = FakeConn(alice)
    run(node.subscribe(conn, alice, chat.uri, None))
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
    run(node.subscribe(conn, alice, chat.uri, None))
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
    run(node.subscribe(conn, alice, chat.uri, None))
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
    run(node.subscribe(conn, alice, chat.uri, 2))
    assert conn.control[0] == {"type": "subscribed", "chat": chat.uri, "last_seq": 5,
                               "online": [alice.id]}
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
    subscribing = node.subscribe(conn, alice, chat.uri, 0)
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
            run(node.subscribe(conn, user, chat.uri, after))
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
    run(node.subscribe(conn, alice, chat.uri, None))
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
    run(a.subscribe(on_a, alice, chat.uri, None))
    run(b.subscribe(on_b, bob, chat.uri, None))
    for i in range(5):
        run(a.chats.post(alice, chat.uri, f"m{i}", None))
    clock.advance(0)
    assert on_a.seqs() == on_b.seqs() == [2, 3, 4, 5, 6]  # bob's join is seq 1


def test_typing_reaches_other_users_only() -> None:
    clock, node = setup()
    alice, bob = node.user("alice"), node.user("bob")
    chat = node.chat(alice, bob)
    conn_a, conn_b = FakeConn(alice), FakeConn(bob)
    run(node.subscribe(conn_a, alice, chat.uri, None))
    run(node.subscribe(conn_b, bob, chat.uri, None))
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
    run(node.subscribe(conn, bob, chat.uri, None))
    run(node.chats.leave(bob, chat.uri))
    # The subscription ends; the user's sockets are also told their chat list changed.
    assert conn.control[-2:] == [{"type": "unsubscribed", "chat": chat.uri},
                                 {"type": "chats_changed"}]
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
    run(node.subscribe(conn, alice, chat.uri, None))
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
        run(node.subscribe(conn, alice, chat.uri, None))
    assert node.hub.subscription_count() == 3
    node.hub.connection_closed(conn)
    assert node.hub.subscription_count() == 0 and node.hub.connections() == []
    assert node.bus._followed == {CONTROL}


# -- issue 18: check before effect, closed connections, caps, typing --------------------


def _gated(node: Node) -> list[Deferred[None]]:
    """Make ChatService's membership check wait for a gate the test opens (a slow store)."""
    gates: list[Deferred[None]] = []
    real = node.chats.member_chat

    async def member_chat(user: User, uri: str) -> Chat:
        gate: Deferred[None] = Deferred()
        gates.append(gate)
        await gate
        return await real(user, uri)

    node.chats.member_chat = member_chat  # type: ignore[method-assign]
    return gates


def _refused(d: Deferred[None]) -> ChatireError:
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert failures, "the subscribe was not refused"
    error = failures[0].value
    assert isinstance(error, ChatireError)
    return error


def test_internal_and_malformed_names_are_not_found_and_follow_nothing() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    conn = FakeConn(alice)
    node.hub.connection_opened(conn)
    for name in (CONTROL, "_control", "amq.x", "", "x" * 300, "a.b"):
        d = Deferred.fromCoroutine(node.subscribe(conn, alice, name, None))
        assert _refused(d).code == "not_found"
    assert node.hub.subscription_count() == 0
    assert node.bus._followed == {CONTROL}


def test_nothing_is_followed_before_the_membership_check_says_yes() -> None:
    _clock, node = setup()
    alice, mallory = node.user("alice"), node.user("mallory")
    chat = node.chat(alice)
    gates = _gated(node)
    conn = FakeConn(mallory)
    d = Deferred.fromCoroutine(node.subscribe(conn, mallory, chat.uri, None))
    assert node.bus._followed == {CONTROL} and node.hub.subscription_count() == 0
    gates[0].callback(None)
    assert _refused(d).code == "forbidden"
    assert node.bus._followed == {CONTROL} and node.hub.subscription_count() == 0


def test_a_refused_resubscribe_keeps_the_subscription_and_the_follow() -> None:
    clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    conn = FakeConn(alice)
    run(node.subscribe(conn, alice, chat.uri, None))
    d = Deferred.fromCoroutine(node.subscribe(conn, alice, chat.uri, 5))
    assert _refused(d).code == "invalid"
    assert node.bus._followed == {CONTROL, chat.uri}
    run(node.chats.post(alice, chat.uri, "m", None))
    clock.advance(0)
    assert conn.seqs() == [1]


def test_a_connection_closed_during_the_check_is_not_registered_again() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    gates = _gated(node)
    conn = FakeConn(alice)
    node.hub.connection_opened(conn)
    d = Deferred.fromCoroutine(node.subscribe(conn, alice, chat.uri, None))
    node.hub.connection_closed(conn)
    gates[0].callback(None)
    assert d.called and conn.control == []
    assert node.hub.subscription_count() == 0 and node.hub.connections() == []
    assert node.bus._followed == {CONTROL}
    assert node.hub.connection_opened(conn) is False  # never registered again
    run(node.subscribe(conn, alice, chat.uri, None))  # work queued later: nothing
    assert node.hub.subscription_count() == 0 and node.hub.connections() == []


def test_a_leave_during_the_check_refuses_the_subscribe() -> None:
    _clock, node = setup()
    alice, bob = node.user("alice"), node.user("bob")
    chat = node.chat(alice, bob)
    gates = _gated(node)
    conn = FakeConn(bob)
    d = Deferred.fromCoroutine(node.subscribe(conn, bob, chat.uri, None))
    node.hub.membership_ended(chat.uri, bob.id)  # the store answered before the leave
    gates[0].callback(None)
    assert _refused(d).code == "forbidden"
    assert node.hub.subscription_count() == 0


def test_a_message_committed_during_the_check_is_delivered_at_once() -> None:
    _clock, node = setup()
    alice = node.user("alice")
    chat = node.chat(alice)
    node.commit_silently(chat, alice, 2)
    real = node.chats.member_chat

    async def member_chat(user: User, uri: str) -> Chat:
        found = await real(user, uri)
        run(node.chats.post(alice, uri, "meanwhile", None))  # after the read of last_seq
        return found

    node.chats.member_chat = member_chat  # type: ignore[method-assign]
    conn = FakeConn(alice)
    run(node.subscribe(conn, alice, chat.uri, 0))
    assert conn.seqs() == [1, 2, 3]


def test_subscriptions_of_one_connection_are_capped() -> None:
    clock = Clock()
    node = Node(clock, MemoryBroker())
    node.hub._max_subscriptions = 2
    alice = node.user("alice")
    chats = [node.chat(alice) for _ in range(3)]
    conn = FakeConn(alice)
    for chat in chats[:2]:
        run(node.subscribe(conn, alice, chat.uri, None))
    d = Deferred.fromCoroutine(node.subscribe(conn, alice, chats[2].uri, None))
    assert _refused(d).code == "rate_limited"
    run(node.subscribe(conn, alice, chats[0].uri, None))  # again: allowed
    assert node.hub.subscription_count() == 2


def test_typing_is_relayed_once_per_interval_and_dropped_before_the_bus() -> None:
    clock, broker = Clock(), MemoryBroker()
    here = Node(clock, broker)
    there = Node(clock, broker, store=here.store)
    alice, bob = here.user("alice"), here.user("bob")
    chat = here.chat(alice, bob)
    typer, watcher, remote = FakeConn(alice), FakeConn(bob), FakeConn(bob)
    run(here.subscribe(typer, alice, chat.uri, None))
    run(here.subscribe(watcher, bob, chat.uri, None))
    run(there.subscribe(remote, bob, chat.uri, None))
    clock.advance(0)  # bob's join event has gone by
    routed: list[str] = []  # what went over the bus, seen by one more node
    spy = MemoryBus(clock, broker)
    spy.start(lambda uri, seq, payload, ack: routed.append(uri), lambda: None)
    spy.follow(chat.uri)
    for _ in range(100):
        here.hub.typing(typer, alice, chat.uri)
        clock.advance(0.01)
    assert len(routed) == 1  # one publish on the bus, the rest dropped here
    assert len(watcher.frames) == 1 and len(remote.frames) == 1
    clock.advance(3)
    here.hub.typing(typer, alice, chat.uri)
    clock.advance(0)
    assert len(routed) == 2 and len(remote.frames) == 2


def test_a_message_ends_typing_so_the_next_keystroke_shows_again() -> None:
    clock = Clock()
    node = Node(clock, MemoryBroker())
    alice, bob = node.user("alice"), node.user("bob")
    chat = node.chat(alice, bob)
    typer, watcher = FakeConn(alice), FakeConn(bob)
    run(node.subscribe(typer, alice, chat.uri, None))
    run(node.subscribe(watcher, bob, chat.uri, None))
    node.hub.typing(typer, alice, chat.uri)
    clock.advance(0)
    run(node.chats.post(alice, chat.uri, "Hi Bob", None))  # the UI clears the line on it
    node.hub.typing(typer, alice, chat.uri)  # within the interval, but a new burst
    clock.advance(0)
    kinds = [json.loads(frame)["type"] for frame in watcher.frames]
    assert kinds == ["typing", "message", "typing"]


def test_a_read_frame_never_goes_back_for_a_socket() -> None:
    """Marks told early on two nodes can cross: a socket that marked or was told a later
    read_seq is not sent an earlier one; an equal one is still told (a second device)."""
    clock, broker = Clock(), MemoryBroker()
    a = Node(clock, broker)
    b = Node(clock, broker, store=a.store)
    alice = a.user("alice")
    chat = a.chat(alice)
    for i in range(5):
        run(a.chats.post(alice, chat.uri, f"m{i}", None))
    phone, laptop = FakeConn(alice), FakeConn(alice)
    run(a.subscribe(phone, alice, chat.uri, None))
    run(b.subscribe(laptop, alice, chat.uri, None))
    clock.advance(0)
    assert a.hub.marked(phone, chat.uri, 4) == 5  # capped at what it was sent: 5 seqs
    assert b.hub.marked(laptop, chat.uri, 2) == 5
    b.hub.read_marked(chat.uri, alice.id, 2, laptop)  # the laptop's mark, told early
    a.hub.read_marked(chat.uri, alice.id, 4, phone)
    clock.advance(0)
    reads = [c for c in laptop.control if c["type"] == "read"]
    assert reads == [{"type": "read", "chat": chat.uri, "seq": 4}]
    assert [c for c in phone.control if c["type"] == "read"] == []  # 2 < 4: never back
    a.hub.read_marked(chat.uri, alice.id, 4, None)  # an equal one from elsewhere: told
    clock.advance(0)
    assert [c["seq"] for c in phone.control if c["type"] == "read"] == [4]
    assert b.hub.marked(FakeConn(alice), chat.uri, 9) is None  # not subscribed: no cap
