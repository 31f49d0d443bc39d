"""ControlOutbox: control events batched behind the one batch waiting for its confirm."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from chatire.bus.memory import MemoryBus
from chatire.frames import CONTROL, EPHEMERAL
from chatire.jsonin import encode
from chatire.outbox import MAX_BATCH, ControlOutbox


class HeldBus(MemoryBus):
    """The in-memory bus, but each publish's confirm waits until the test gives it."""

    def __init__(self) -> None:
        super().__init__(Clock())
        self.sent: list[tuple[bytes, Deferred[None]]] = []

    def publish(self, chat_uri: str, seq: int, payload: bytes) -> Deferred[None]:
        assert (chat_uri, seq) == (CONTROL, EPHEMERAL)
        confirm: Deferred[None] = Deferred()
        self.sent.append((payload, confirm))
        return confirm

    def events(self, i: int) -> list[Any]:
        body = json.loads(self.sent[i][0])
        assert body["node"] == "n1"
        events: list[Any] = body["events"]
        return events


def event(n: int) -> bytes:
    return encode({"kind": "read", "chat": "c", "user": 1, "seq": n})


def test_an_event_on_an_idle_link_goes_at_once_and_alone() -> None:
    bus = HeldBus()
    outbox = ControlOutbox(bus, "n1", lambda failure, uri: None)
    outbox.send(event(1))
    assert len(bus.sent) == 1 and bus.events(0) == [{"kind": "read", "chat": "c",
                                                     "user": 1, "seq": 1}]


def test_events_while_a_batch_waits_go_together_in_order_after_its_confirm() -> None:
    bus = HeldBus()
    outbox = ControlOutbox(bus, "n1", lambda failure, uri: None)
    for n in range(1, 6):
        outbox.send(event(n))
    assert len(bus.sent) == 1  # 2..5 wait for the first one's confirm
    bus.sent[0][1].callback(None)
    assert len(bus.sent) == 2 and [e["seq"] for e in bus.events(1)] == [2, 3, 4, 5]
    bus.sent[1][1].callback(None)
    assert len(bus.sent) == 2  # nothing left: nothing sent
    outbox.send(event(6))  # idle again: at once
    assert len(bus.sent) == 3 and [e["seq"] for e in bus.events(2)] == [6]
    assert (outbox.events, outbox.messages) == (6, 3)


def test_a_full_batch_goes_without_waiting() -> None:
    bus = HeldBus()
    outbox = ControlOutbox(bus, "n1", lambda failure, uri: None)
    for n in range(1 + MAX_BATCH + 3):
        outbox.send(event(n))
    # The first alone, a full batch beside it, the last three wait.
    assert [len(bus.events(i)) for i in range(len(bus.sent))] == [1, MAX_BATCH]
    bus.sent[0][1].callback(None)
    assert len(bus.sent) == 2  # a batch is still in flight
    bus.sent[1][1].callback(None)
    assert [e["seq"] for e in bus.events(2)] == [MAX_BATCH + 1, MAX_BATCH + 2, MAX_BATCH + 3]


def test_a_failed_publish_is_counted_and_the_next_batch_still_goes() -> None:
    bus = HeldBus()
    failures: list[str] = []
    outbox = ControlOutbox(bus, "n1", lambda failure, uri: failures.append(uri))
    outbox.send(event(1))
    outbox.send(event(2))
    bus.sent[0][1].errback(Failure(RuntimeError("nacked")))
    assert failures == [CONTROL]
    assert [e["seq"] for e in bus.events(1)] == [2]


def test_own_batches_are_known_by_their_first_bytes() -> None:
    bus = HeldBus()
    mine, other = ControlOutbox(bus, "n1", lambda f, u: None), ControlOutbox(
        bus, "n10", lambda f, u: None)
    mine.send(event(1))
    other.send(event(2))
    assert mine.is_own(bus.sent[0][0]) and not mine.is_own(bus.sent[1][0])
    assert other.is_own(bus.sent[1][0]) and not other.is_own(bus.sent[0][0])
    assert not mine.is_own(event(3))  # a lone event (chatire admin's) is nobody's own


def test_the_memory_bus_confirms_at_once_so_each_event_goes_alone() -> None:
    bus = MemoryBus(Clock())
    outbox = ControlOutbox(bus, "n1", lambda f, u: None)
    for n in range(3):
        outbox.send(event(n))
    assert (outbox.events, outbox.messages) == (3, 3)


def test_a_bad_event_in_a_batch_does_not_stop_the_others_and_a_lone_event_still_works() -> None:
    """What another node (or `chatire admin`) sends is applied event by event: a garbled
    one is logged and skipped, the rest of its batch still reaches the sockets."""
    from chatire.bus.memory import MemoryBroker
    from tests.unit.harness import FakeConn, Node, run

    node = Node(Clock(), MemoryBroker())
    alice = node.user("alice")
    chat = node.chat(alice)
    phone = FakeConn(alice)
    run(node.subscribe(phone, alice, chat.uri, None))
    read = {"kind": "read", "chat": chat.uri, "user": alice.id, "node": "other"}
    batch = encode({"node": "other", "events": [{"kind": "read"}, {**read, "seq": 1}]})
    node.hub.control.received(batch)
    node.hub.control.received(encode({**read, "seq": 2}))
    assert [f["seq"] for f in phone.control if f["type"] == "read"] == [1, 2]
