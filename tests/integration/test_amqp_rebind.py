"""AMQPBus binding thousands of chats again after its link to RabbitMQ was cut (issue #20)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pika
import pytest_twisted
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet.protocol import ClientCreator
from twisted.internet.task import LoopingCall

from tests.integration import test_amqp_bus as amqp_tests
from tests.integration.test_amqp_bus import Node, _reactor, chat_uri, eventually
from tests.support.proxy import Proxy

pytestmark = amqp_tests.pytestmark
vhost = amqp_tests.vhost  # the fixtures: a vhost of this module's own, its nodes
nodes = amqp_tests.nodes

CHATS = 2000


@pytest_twisted.async_yield_fixture
async def proxied() -> AsyncIterator[tuple[Proxy, int]]:
    """A TCP proxy to the broker, and its port: ``cut()`` it to lose the link."""
    proxied = Proxy(_reactor(), "127.0.0.1", 5672)
    port = await proxied.start()
    yield proxied, port
    await proxied.stop()


def bound_at_sweep(node: Node) -> list[int]:
    """What ``node.bus.bound`` was each time its on_reconnect ran (the Hub sweeps then)."""
    seen: list[int] = []
    plain = node.on_reconnect

    def on_reconnect() -> None:
        seen.append(node.bus.bound)
        plain()

    node.bus._on_reconnect = on_reconnect
    return seen


async def cut_and_wait(a: Node, proxy: Proxy, reconnects: int) -> None:
    proxy.cut()
    await eventually(lambda: not a.bus.connected, "a to notice the cut")
    proxy.restore()
    await a.wait_reconnects(reconnects)


async def delete_exchange(vhost: str, chat: str) -> None:
    """Delete a chat's exchange behind the daemons' backs (as a broker losing it would)."""
    params = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
    conn: Any = await ClientCreator(_reactor(), TwistedProtocolConnection, params).connectTCP(
        "127.0.0.1", 5672)
    await conn.ready
    channel = await conn.channel()
    await channel.exchange_delete(exchange="chatire.chat." + chat)
    conn.close()


@pytest_twisted.ensureDeferred
async def test_a_cut_link_rebinds_every_chat_before_the_sweep(
    nodes: Callable[..., Node], vhost: str, proxied: tuple[Proxy, int]
) -> None:
    proxy, port = proxied
    chats = [chat_uri() for _ in range(CHATS)]
    a = nodes(f"amqp://guest:guest@127.0.0.1:{port}/{vhost}")
    b = nodes()  # the publisher, straight to the broker
    swept = bound_at_sweep(a)
    for chat in chats:
        a.bus.follow(chat)
    await a.wait_reconnects(1)
    await b.wait_reconnects(1)
    assert swept == [CHATS]

    # The reactor keeps turning while the chats are bound again.
    ticks: list[float] = []
    ticker = LoopingCall(lambda: ticks.append(_reactor().seconds()))
    ticker.start(0.01)
    proxy.cut()
    await eventually(lambda: not a.bus.connected, "a to notice the cut")
    for chat in chats[:100]:  # posted while a is away: the Hub's sweep heals these
        await b.bus.publish(chat, 1, b"{}")
    proxy.restore()
    await a.wait_reconnects(2)
    ticker.stop()
    assert swept == [CHATS, CHATS]  # the sweep ran once every chat was bound again
    assert max(later - earlier for earlier, later in itertools.pairwise(ticks)) < 1.0

    for chat in chats:
        b.bus.publish(chat, 2, b"{}")

    def all_arrived() -> bool:
        for *_, ack in a.received:
            ack()  # (the prefetch window holds 1,000)
        return len(a.received) >= CHATS

    await eventually(all_arrived, "a post to every chat", 30)
    assert sorted(a.got()) == sorted((chat, 2, b"{}") for chat in chats)


@pytest_twisted.ensureDeferred
async def test_an_exchange_lost_meanwhile_is_declared_again(
    nodes: Callable[..., Node], vhost: str, proxied: tuple[Proxy, int]
) -> None:
    proxy, port = proxied
    chats = [chat_uri() for _ in range(300)]
    a = nodes(f"amqp://guest:guest@127.0.0.1:{port}/{vhost}")
    swept = bound_at_sweep(a)
    for chat in chats:
        a.bus.follow(chat)
    await a.wait_reconnects(1)
    # Bound without a declare on the rebind: the broker refuses the batch of the lost
    # one (NOT_FOUND closes that channel); the batch is declared and bound again.
    await delete_exchange(vhost, chats[150])
    await cut_and_wait(a, proxy, 2)
    assert swept == [300, 300]
    assert a.bus.connected

    b = nodes()
    await b.wait_reconnects(1)
    for chat in (chats[0], chats[150], chats[-1]):
        await b.bus.publish(chat, 1, b"{}")
    assert sorted(await a.wait_for(3)) == sorted(
        (chat, 1, b"{}") for chat in (chats[0], chats[150], chats[-1]))
