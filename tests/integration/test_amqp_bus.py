"""AMQPBus against the real RabbitMQ at 127.0.0.1:5672 (guest/guest), in a vhost of its own."""

from __future__ import annotations

import inspect
import json
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock, deferLater
from twisted.internet.utils import getProcessOutputAndValue

from chatire.bus._amqp_link import parse_url
from chatire.bus.amqp import AMQPBus


def _broker_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return False
    return shutil.which("rabbitmqctl") is not None


pytestmark = [
    pytest.mark.rabbitmq,
    pytest.mark.skipif(not _broker_reachable(), reason="RabbitMQ (and rabbitmqctl) not here"),
]

TIMEOUT = 10.0


def fast_retry(attempt: int) -> float:
    return 0.05


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


async def rabbitmqctl(*args: str) -> list[list[str]]:
    """Run rabbitmqctl without blocking the reactor; its output as rows of fields."""
    out, err, code = await getProcessOutputAndValue(
        shutil.which("rabbitmqctl") or "rabbitmqctl",
        ["-q", *args],
        env=dict(os.environ),
        reactor=_reactor(),
    )
    if code != 0:
        raise RuntimeError(f"rabbitmqctl {args} failed ({code}): {err.decode(errors='replace')}")
    return [line.split("\t") for line in out.decode().splitlines() if line.strip()]


async def sleep(seconds: float) -> None:
    await deferLater(_reactor(), seconds, lambda: None)


async def eventually(check: Callable[[], Any], what: str, within: float = TIMEOUT) -> Any:
    """Call ``check()`` (awaiting what it returns, if awaitable) until the result is truthy."""
    deadline = _reactor().seconds() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if _reactor().seconds() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await sleep(0.05)


class Node:
    """An AMQPBus with what it received: a stand-in for one daemon's Hub."""

    def __init__(self, bus: AMQPBus) -> None:
        self.bus = bus
        self.received: list[tuple[str, int, bytes, Callable[[], None]]] = []
        self.reconnects = 0

    def on_message(self, chat: str, seq: int, payload: bytes, ack: Callable[[], None]) -> None:
        self.received.append((chat, seq, payload, ack))

    def on_reconnect(self) -> None:
        self.reconnects += 1

    def got(self, chat: str | None = None) -> list[tuple[str, int, bytes]]:
        return [(c, s, p) for c, s, p, _ in self.received if chat is None or c == chat]

    async def wait_for(self, n: int, chat: str | None = None) -> list[tuple[str, int, bytes]]:
        return await eventually(
            lambda: len(self.got(chat)) >= n and self.got(chat), f"{n} messages for {chat}"
        )

    async def wait_reconnects(self, n: int) -> None:
        await eventually(lambda: self.reconnects >= n, f"{n} (re)connections")


def chat_uri() -> str:
    return secrets.token_urlsafe(16)


@pytest_twisted.async_yield_fixture(scope="module")
async def vhost() -> AsyncIterator[str]:
    name = f"chatire-test-{secrets.token_hex(4)}"
    await rabbitmqctl("add_vhost", name)
    try:
        await rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        await rabbitmqctl("delete_vhost", name)


@pytest_twisted.async_yield_fixture
async def nodes(vhost: str) -> AsyncIterator[Callable[..., Node]]:
    """``nodes(url=None, **bus_keywords)`` starts an AMQPBus (by default on the test
    vhost); all are stopped at the end."""
    started: list[Node] = []

    def start(url: str | None = None, **keywords: Any) -> Node:
        keywords.setdefault("retry_policy", fast_retry)
        url = url or f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        node = Node(AMQPBus(url, _reactor(), **keywords))
        node.bus.start(node.on_message, node.on_reconnect)
        started.append(node)
        return node

    yield start
    for node in started:
        await node.bus.stop()


async def queues(vhost: str) -> dict[str, tuple[int, int]]:
    """{queue: (messages ready, messages unacknowledged)} on the vhost."""
    rows = await rabbitmqctl(
        "list_queues", "-p", vhost, "--no-table-headers",
        "name", "messages_ready", "messages_unacknowledged",
    )
    return {name: (int(ready), int(unacked)) for name, ready, unacked in rows}


async def queue_states(vhost: str) -> list[tuple[int, int]]:
    """Sorted (ready, unacked) of every queue on the vhost."""
    return sorted((await queues(vhost)).values())


async def queue_states_are(vhost: str, expected: list[tuple[int, int]]) -> bool:
    return await queue_states(vhost) == expected


async def bound_chats(vhost: str) -> dict[str, set[str]]:
    """{queue: chat uris whose exchange is bound to it} on the vhost."""
    rows = await rabbitmqctl(
        "list_bindings", "-p", vhost, "--no-table-headers", "source_name", "destination_name"
    )
    result: dict[str, set[str]] = {}
    for source, destination in rows:
        if source.startswith("chatire.chat."):
            result.setdefault(destination, set()).add(source.removeprefix("chatire.chat."))
    return result


def test_malformed_url_is_a_clear_value_error() -> None:
    for url in (
        "amqp://guest:s3cret@127.0.0.1:notaport/%2F",
        "amqp://guest:s3cret@127.0.0.1:5672/%2F?heartbeat=often",
        "amqp://guest:s3cret@127.0.0.1:5672/%2F?bogus=1",
        "http://guest:s3cret@127.0.0.1:5672/",
        "amqp://[::1",
    ):
        with pytest.raises(ValueError, match="AMQP URL") as caught:
            AMQPBus(url, Clock())
        assert "s3cret" not in str(caught.value)
    with pytest.raises(ValueError):
        AMQPBus("amqp://127.0.0.1/", Clock()).follow("not a chat uri!")
    assert parse_url("amqp://h/%2F")[0].heartbeat == 10
    assert parse_url("amqp://h/%2F?heartbeat=3")[0].heartbeat == 3


@pytest_twisted.ensureDeferred
async def test_two_nodes_get_each_message_and_ack_it(
    nodes: Callable[..., Node], vhost: str
) -> None:
    a, b = nodes(), nodes()
    chat = chat_uri()
    a.bus.follow(chat)
    b.bus.follow(chat)
    await a.wait_reconnects(1)
    await b.wait_reconnects(1)
    assert a.bus.connected and b.bus.connected
    # One connection per node, with the default 10 s heartbeat.
    rows = await rabbitmqctl("list_connections", "--no-table-headers", "vhost", "timeout")
    assert [row for row in rows if row[0] == vhost] == [[vhost, "10"]] * 2

    for seq in (1, 2, 3):
        await a.bus.publish(chat, seq, b'{"seq": %d}' % seq)
    expected = [(chat, seq, b'{"seq": %d}' % seq) for seq in (1, 2, 3)]
    assert await a.wait_for(3) == expected
    assert await b.wait_for(3) == expected

    # Unacked until the Hub says so: one queue per node, 3 unacked each.
    assert await queue_states(vhost) == [(0, 3), (0, 3)]
    for node in (a, b):
        for *_, ack in node.received:
            ack()
            ack()  # a second call is a no-op
    await eventually(lambda: queue_states_are(vhost, [(0, 0), (0, 0)]), "no unacked messages")

    await a.bus.stop()
    await b.bus.stop()
    assert not a.bus.connected
    rows = await rabbitmqctl("list_connections", "--no-table-headers", "vhost")
    assert [vhost] not in rows


@pytest_twisted.ensureDeferred
async def test_only_followed_chats_are_received(nodes: Callable[..., Node]) -> None:
    a, b = nodes(), nodes()
    mine, theirs, nobodys = chat_uri(), chat_uri(), chat_uri()
    a.bus.follow(mine)
    b.bus.follow(theirs)
    await a.wait_reconnects(1)
    await b.wait_reconnects(1)

    await a.bus.publish(nobodys, 1, b"{}")  # confirmed though nobody listens
    await a.bus.publish(theirs, 1, b"{}")
    await a.bus.publish(mine, 1, b"{}")
    # One channel publishes all three in order, so by the time "mine" is in,
    # anything routed to a's queue before it is in too.
    assert await a.wait_for(1) == [(mine, 1, b"{}")]
    assert await b.wait_for(1) == [(theirs, 1, b"{}")]
    await b.bus.publish(mine, 2, b"{}")
    await a.wait_for(2)
    assert a.got() == [(mine, 1, b"{}"), (mine, 2, b"{}")]
    assert b.got() == [(theirs, 1, b"{}")]


@pytest_twisted.ensureDeferred
async def test_one_queue_per_node_whatever_it_follows(
    nodes: Callable[..., Node], vhost: str
) -> None:
    chats = [chat_uri() for _ in range(25)]
    a, b = nodes(), nodes()
    for chat in chats:
        a.bus.follow(chat)  # before the link is up: bound during set-up
    await a.wait_reconnects(1)
    await b.wait_reconnects(1)
    for chat in chats[:5]:
        b.bus.follow(chat)  # after: bound at once
        b.bus.follow(chat)  # twice is once
    # Binds go out on channels of their own: a publish may overtake them.
    await eventually(lambda: b.bus.bound == 5, "b's five binds answered")
    await b.bus.publish(chats[4], 1, b"{}")
    await a.bus.publish(chats[20], 1, b"{}")
    assert await b.wait_for(1) == [(chats[4], 1, b"{}")]
    assert sorted(await a.wait_for(2)) == sorted([(chats[4], 1, b"{}"), (chats[20], 1, b"{}")])

    assert len(await queues(vhost)) == 2
    bindings = await bound_chats(vhost)
    assert sorted(len(chats_bound) for chats_bound in bindings.values()) == [5, 25]


@pytest_twisted.ensureDeferred
async def test_the_link_sends_without_nagle(nodes: Callable[..., Node]) -> None:
    # With Nagle on, a publish that follows another closely waits for the broker's
    # delayed ACK (tens of ms). pika sets TCP_NODELAY only on sockets it opens itself.
    node = nodes()
    await node.wait_reconnects(1)
    link = node.bus._link
    assert link is not None
    handle = link.transport.getHandle()
    assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest_twisted.ensureDeferred
async def test_unfollow_unbinds_lazily(nodes: Callable[..., Node], vhost: str) -> None:
    clock = Clock()
    a = nodes(clock=clock, unbind_delay=30)
    chat, other = chat_uri(), chat_uri()
    a.bus.follow(chat)
    a.bus.follow(other)
    await a.wait_reconnects(1)
    [queue] = (await bound_chats(vhost)).keys()

    a.bus.unfollow(chat)
    # Deliveries stop at once (the bus acks and drops them) ...
    await a.bus.publish(chat, 1, b"{}")
    await a.bus.publish(other, 1, b"{}")
    assert await a.wait_for(1) == [(other, 1, b"{}")]
    # ... but the binding stays for the delay,
    clock.advance(29)
    assert (await bound_chats(vhost))[queue] == {chat, other}
    # and following again within it cancels the unbind.
    a.bus.follow(chat)
    clock.advance(5)
    assert (await bound_chats(vhost))[queue] == {chat, other}
    await a.bus.publish(chat, 2, b"{}")
    assert await a.wait_for(1, chat) == [(chat, 2, b"{}")]

    a.bus.unfollow(chat)
    clock.advance(30)

    async def unbound() -> bool:
        return (await bound_chats(vhost)).get(queue) == {other}

    await eventually(unbound, "the lazy unbind")
    assert not clock.getDelayedCalls()
    # The unfollowed message was acked by the bus; the two delivered ones wait for theirs.
    assert await queue_states(vhost) == [(0, 2)]


@pytest_twisted.ensureDeferred
async def test_reconnects_rebinds_and_flushes_the_outbox(
    nodes: Callable[..., Node], vhost: str
) -> None:
    a = nodes()
    b = nodes(retry_policy=lambda attempt: 1.0)  # stays down a while
    chat = chat_uri()
    a.bus.follow(chat)
    await a.wait_reconnects(1)
    await b.wait_reconnects(1)

    await rabbitmqctl("close_all_connections", "-p", vhost, "chatire test")
    await eventually(lambda: not b.bus.connected, "b to notice")
    sent = b.bus.publish(chat, 7, b'{"outbox": true}')
    assert not sent.called

    await a.wait_reconnects(2)
    await b.wait_reconnects(2)
    await sent  # confirmed after the reconnect
    assert await a.wait_for(1) == [(chat, 7, b'{"outbox": true}')]
    a.received[0][3]()
    await eventually(
        lambda: queue_states_are(vhost, [(0, 0), (0, 0)]), "two fresh queues, nothing unacked"
    )


@pytest_twisted.ensureDeferred
async def test_an_ack_from_before_a_reconnect_is_a_no_op(
    nodes: Callable[..., Node], vhost: str
) -> None:
    a = nodes()
    chat = chat_uri()
    a.bus.follow(chat)
    await a.wait_reconnects(1)
    await a.bus.publish(chat, 1, b"{}")
    await a.wait_for(1)
    stale_ack = a.received[0][3]

    await rabbitmqctl("close_all_connections", "-p", vhost, "chatire test")
    await a.wait_reconnects(2)
    stale_ack()  # the channel that delivered it is gone: nothing happens
    assert a.bus.connected


@pytest_twisted.ensureDeferred
async def test_deleted_queue_leads_to_a_clean_reconnect(
    nodes: Callable[..., Node], vhost: str
) -> None:
    a = nodes()
    chat = chat_uri()
    a.bus.follow(chat)
    await a.wait_reconnects(1)
    [queue] = await queues(vhost)

    await rabbitmqctl("delete_queue", "-p", vhost, queue)
    await a.wait_reconnects(2)
    [new_queue] = await queues(vhost)
    assert new_queue != queue
    await a.bus.publish(chat, 1, b"{}")
    assert await a.wait_for(1) == [(chat, 1, b"{}")]


@pytest_twisted.ensureDeferred
async def test_garbled_messages_are_acked_and_dropped(
    nodes: Callable[..., Node], vhost: str
) -> None:
    import pika
    from pika.adapters.twisted_connection import TwistedProtocolConnection
    from twisted.internet.protocol import ClientCreator

    a = nodes()
    chat = chat_uri()
    a.bus.follow(chat)
    await a.wait_reconnects(1)

    params = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
    conn = await ClientCreator(
        _reactor(), TwistedProtocolConnection, params, custom_reactor=_reactor()
    ).connectTCP("127.0.0.1", 5672)
    try:
        await conn.ready
        channel = await conn.channel()
        await channel.confirm_delivery()
        exchange = f"chatire.chat.{chat}"
        for headers in (None, {"chat": chat}, {"chat": chat, "seq": "one"}, {"seq": 1},
                        {"chat": chat, "seq": -1}):
            await channel.basic_publish(exchange, "", b"{}", pika.BasicProperties(headers=headers))
    finally:
        closed = conn.close()
        if closed is not None:
            await closed
    # Queued after the garbled ones; seq 0 is the Hub's "ephemeral" (typing), let through.
    await a.bus.publish(chat, 0, b'{"type": "typing"}')
    await a.bus.publish(chat, 1, b"{}")
    assert await a.wait_for(2) == [(chat, 0, b'{"type": "typing"}'), (chat, 1, b"{}")]
    for *_, ack in a.received:
        ack()
    await eventually(lambda: queue_states_are(vhost, [(0, 0)]), "the garbled ones acked")
    assert len(a.got()) == 2


@pytest_twisted.ensureDeferred
async def test_refused_login_backs_off_and_overflowing_outbox_drops_oldest(
    nodes: Callable[..., Node], vhost: str
) -> None:
    from chatire.bus.amqp import BusStoppedError, OutboxOverflowError

    attempts: list[int] = []

    def policy(attempt: int) -> float:
        attempts.append(attempt)
        return 0.05

    node = nodes(
        f"amqp://guest:wrong@127.0.0.1:5672/{vhost}", retry_policy=policy, outbox_size=2
    )
    bus = node.bus
    results: list[Any] = []
    for seq in (1, 2, 3):
        bus.publish(chat_uri(), seq, b"{}").addBoth(results.append)
    assert len(results) == 1 and results[0].check(OutboxOverflowError)
    assert bus.dropped == 1

    await eventually(lambda: len(attempts) >= 3, "three retries")
    # Each failed AMQP set-up counts, though every TCP connect succeeds.
    assert attempts[:3] == [2, 3, 4]
    assert not bus.connected and node.reconnects == 0
    await bus.stop()
    assert [r.check(BusStoppedError) for r in results[1:]] == [BusStoppedError] * 2


@pytest_twisted.ensureDeferred
async def test_silent_broker_times_out_and_is_retried(nodes: Callable[..., Node]) -> None:
    from twisted.internet.protocol import Factory, Protocol

    class Silent(Protocol):
        def connectionLost(self, reason: object = None) -> None:
            lost.append(reason)

    lost: list[object] = []
    port = _reactor().listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")
    try:
        # The deadline also bounds the TCP connect; a loaded CI machine (three workers and
        # browsers on two cores) once took most of 10 s over two 0.2 s attempts.
        node = nodes(f"amqp://guest:guest@127.0.0.1:{port.getHost().port}/", connect_timeout=0.5)
        await eventually(lambda: len(lost) >= 2, "two attempts cut off", within=30.0)
        assert not node.bus.connected and node.reconnects == 0
        await node.bus.stop()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_control_events_ride_in_batches_in_order(nodes: Callable[..., Node]) -> None:
    """On the real broker the confirm takes a round trip: the events sent meanwhile go as
    one message, the other node gets every event once and in order, and the sender knows
    its own batches when they come back."""
    from chatire.frames import CONTROL
    from chatire.jsonin import encode
    from chatire.outbox import ControlOutbox

    a, b = nodes(), nodes()
    for node in (a, b):
        node.bus.follow(CONTROL)  # before the link is up: bound when it is
    for node in (a, b):
        await node.wait_reconnects(1)
    outbox = ControlOutbox(a.bus, "node-a", lambda failure, uri: None)
    for n in range(300):
        outbox.send(encode({"kind": "read", "chat": "c", "user": 7, "seq": n}))
    assert outbox.messages == 1  # the rest wait for the first one's confirm

    def seqs(node: Node) -> list[int]:
        return [e["seq"] for _, _, p, _ in node.received for e in json.loads(p)["events"]]

    await eventually(lambda: len(seqs(b)) >= 300, "300 events at the other node")
    assert seqs(b) == list(range(300))
    assert outbox.messages == len(b.received) == 2
    await eventually(lambda: len(a.received) == 2, "the sender's own copies")
    assert all(outbox.is_own(p) for _, _, p, _ in a.received)
