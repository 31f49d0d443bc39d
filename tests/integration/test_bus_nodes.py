"""A RabbitMQ cluster's nodes in one --bus: a dead node is passed over for the next, and
the flags, variables and logs say which node is in use."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted

from chatire.bus._amqp_link import Nodes
from chatire.bus.amqp import AMQPBus
from chatire.config import from_environment
from chatire.tap import Options
from chatire.testing import fresh_vhost
from tests.support.daemons import sleep
from tests.support.proxy import Proxy


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nodes_take_turns_in_an_order_of_the_daemons_own() -> None:
    nodes = Nodes("amqp://a:5672/%2F, amqp://b:5673/%2F,amqp://c:5674/%2F")
    seen = []
    for _ in range(4):
        seen.append(nodes.where)
        nodes.failed()
    assert seen == ["a:5672", "b:5673", "c:5674", "a:5672"]
    orders = {tuple(p.host for p, _ in Nodes("amqp://a/,amqp://b/,amqp://c/",
                                             shuffle=random.Random(seed).shuffle).nodes)
              for seed in range(20)}
    assert len(orders) > 1  # daemons spread over the nodes


def test_bus_flags_and_variables_name_several_nodes() -> None:
    options = Options(environ={"CHATIRE_BUS": "amqp://x/%2F,amqp://y/%2F"})
    options.parseOptions([])
    assert options.config.bus == "amqp://x/%2F,amqp://y/%2F"
    assert from_environment({"CHATIRE_BUS": "amqp://x/%2F,amqp://y/%2F"}).bus == (
        "amqp://x/%2F,amqp://y/%2F")
    options = Options(environ={"CHATIRE_BUS": "amqp://x/%2F"})
    options.parseOptions(["--bus", "amqp://a/%2F", "--bus", "amqp://b/%2F"])
    assert options.config.bus == "amqp://a/%2F,amqp://b/%2F"  # flags replace the variable


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_dead_first_node_is_passed_over() -> None:
    from twisted.internet import reactor

    with fresh_vhost() as url:
        dead = url.replace(":5672/", f":{_dead_port()}/")
        bus = AMQPBus(f"{dead},{url}", reactor, retry_policy=lambda attempt: 0.1)
        bus._nodes = Nodes(f"{dead},{url}")  # the dead one first: not shuffled
        got: list[Any] = []
        bus.start(lambda uri, seq, payload, ack: (got.append(payload), ack()), lambda: None)
        try:
            for _ in range(100):
                if bus.connected:
                    break
                await sleep(0.05)
            assert bus.connected and bus._nodes.where.endswith(":5672")
            assert bus._nodes.index == 1  # (moved on from the dead one)
            bus.follow("nodes-chat")
            for _ in range(100):  # (binds have channels of their own)
                if bus.bound:
                    break
                await sleep(0.05)
            await bus.publish("nodes-chat", 1, b"over the live node")
            for _ in range(60):
                if got:
                    break
                await sleep(0.05)
            assert got == [b"over the live node"]
        finally:
            await bus.stop()


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_cut_link_moves_to_the_next_node_and_loses_nothing() -> None:
    """The first node is reached through a TCP proxy; cutting it (which then refuses
    every new connection) moves the bus to the second URL, and a publish made while
    the link was down reaches the broker there: another node following the chat gets it.

    (The cut link's own queue is a new one after the move, bound in the background
    while the outbox is sent: its own copy of that publish may be routed before the
    bind, and the Hub's sweep after the rebind fills it in from the store, so only the
    other node's copy is asserted.)"""
    from twisted.internet import reactor

    with fresh_vhost() as url:
        proxy = Proxy(reactor, "127.0.0.1", 5672)
        port = await proxy.start()
        via = url.replace(":5672/", f":{port}/")
        bus = AMQPBus(f"{via},{url}", reactor, retry_policy=lambda attempt: 0.1)
        bus._nodes = Nodes(f"{via},{url}")  # the proxied one first: not shuffled
        other = AMQPBus(url, reactor, retry_policy=lambda attempt: 0.1)
        got: list[bytes] = []
        elsewhere: list[bytes] = []
        bus.start(lambda uri, seq, payload, ack: (got.append(payload), ack()), lambda: None)
        other.start(lambda uri, seq, payload, ack: (elsewhere.append(payload), ack()),
                    lambda: None)
        try:
            assert await _until(lambda: bus.connected and other.connected)
            assert bus._nodes.where == f"127.0.0.1:{port}" and proxy.connections == 1
            bus.follow("cut-chat")
            other.follow("cut-chat")
            # (binds have channels of their own)
            assert await _until(lambda: bus.bound == 1 and other.bound == 1)
            await bus.publish("cut-chat", 1, b"through the proxy")
            assert await _until(lambda: len(got) == 1 and len(elsewhere) == 1)
            proxy.cut()
            assert await _until(lambda: not bus.connected)
            during = bus.publish("cut-chat", 2, b"while the link was down")
            assert await _until(lambda: bus.connected)
            assert bus._nodes.where == "127.0.0.1:5672"
            await during  # confirmed by the broker on the second node
            assert await _until(lambda: len(elsewhere) == 2)
            assert elsewhere == [b"through the proxy", b"while the link was down"]
            assert got[0] == b"through the proxy"
            # and the moved link delivers what is published once it is up
            await other.publish("cut-chat", 3, b"after the move")
            assert await _until(lambda: b"after the move" in got)
        finally:
            await bus.stop()
            await other.stop()
            await proxy.stop()


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait until ``condition()`` holds; whether it did within ``timeout`` seconds."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return True
        await sleep(0.05)
    return condition()
