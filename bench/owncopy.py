"""What a daemon's own copy of its posts costs: AMQPBus publishing to a chat it follows
(the broker routes each post to its queue too, and it receives, acks and drops it)
against one it does not follow.

`python -m bench.owncopy AMQP_URL POSTS ROUNDS` (a vhost of its own) prints one JSON
object. In both ways another queue is bound to the chat (another daemon, that does not
read here: a queue of at most 1,000 messages that drops its oldest), so the broker routes
each post to it either way. Rounds alternate the two ways; each publishes POSTS posts, at
most WINDOW unconfirmed, and ends when the last is confirmed (and, with the own copy,
received and acked). Figures per post: this process's CPU (user + system) and RabbitMQ's
(its beam.smp, from /proc; the broker is shared, so it is the noisier of the two).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

import pika
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientCreator
from twisted.internet.task import deferLater

from chatire.bus.amqp import AMQPBus

WINDOW = 500
reactor: Any = _reactor
TICKS = os.sysconf("SC_CLK_TCK")


def beam_pid() -> int | None:
    """The RabbitMQ node's process (beam.smp), if this machine runs it."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"beam.smp" in cmd and b"rabbit" in cmd:
                return int(pid)
    return None


def cpu_of(pid: int | None) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def other_queue(url: str, chat: str) -> Any:
    """Another daemon's queue bound to the chat (nobody reads it: it keeps 1,000)."""
    params = pika.URLParameters(url)
    conn = await ClientCreator(reactor, TwistedProtocolConnection, params).connectTCP(
        params.host, params.port)
    await conn.ready
    chan = await conn.channel()
    await chan.exchange_declare(exchange="chatire.chat." + chat, exchange_type="fanout",
                                durable=True)
    frame = await chan.queue_declare(queue="", exclusive=True, arguments={
        "x-max-length": 1000, "x-overflow": "drop-head"})
    await chan.queue_bind(queue=frame.method.queue, exchange="chatire.chat." + chat)
    return conn


async def one_round(bus: AMQPBus, chat: str, posts: int, seq0: int,
                    received: list[int]) -> None:
    """Publish ``posts`` posts, WINDOW at most unconfirmed; wait for the confirms."""
    inflight: list[Deferred[None]] = []
    for seq in range(seq0, seq0 + posts):
        inflight.append(bus.publish(chat, seq, b'{"type":"message","body":"own copy"}'))
        if len(inflight) >= WINDOW:
            for d in inflight:
                await d
            inflight = []
    for d in inflight:
        await d


async def measure(url: str, posts: int, rounds: int) -> dict[str, Any]:
    chat = "owncopy" + str(os.getpid())
    other = await other_queue(url, chat)
    received: list[int] = []

    def on_message(uri: str, seq: int, payload: bytes, ack: Any) -> None:
        received.append(seq)  # the Hub finds seq <= last_sent and drops it
        ack()

    bus = AMQPBus(url, reactor)
    up: Deferred[None] = Deferred()
    bus.start(on_message, lambda: None if up.called else up.callback(None))
    await up
    beam = beam_pid()
    figures: dict[str, list[tuple[float, float, float]]] = {"with": [], "without": []}
    seq = 1
    for n in range(2 * rounds):
        way = "with" if n % 2 == 0 else "without"
        if way == "with":
            bound = bus.bound
            bus.follow(chat)
            while bus.bound <= bound:
                await deferLater(reactor, 0.05, lambda: None)
        else:
            bus.unfollow(chat)  # deliveries stop now; the binding goes after a while
            bus._unbind(chat)  # now
            await deferLater(reactor, 0.5, lambda: None)
        received.clear()
        cpu0, beam0, wall0 = time.process_time(), cpu_of(beam), time.perf_counter()
        await one_round(bus, chat, posts, seq, received)
        if way == "with":
            while len(received) < posts:
                await deferLater(reactor, 0.01, lambda: None)
        figures[way].append((time.process_time() - cpu0, cpu_of(beam) - beam0,
                             time.perf_counter() - wall0))
        seq += posts
    await bus.stop()
    other.close()

    def per_post(way: str, i: int) -> float:
        return round(1e6 * statistics.median(f[i] for f in figures[way]) / posts, 1)

    return {"posts": posts, "rounds": rounds, "broker_measured": beam is not None,
            **{f"{way}_{name}": per_post(way, i) for way in ("with", "without")
               for i, name in enumerate(("daemon_us", "broker_us", "wall_us"))},
            # each round's daemon CPU a post (the regression guard's runs)
            **{f"{way}_daemon_us_runs": [round(1e6 * f[0] / posts, 1) for f in figures[way]]
               for way in ("with", "without")}}


def main(argv: list[str]) -> int:
    url, posts, rounds = argv[0], int(argv[1]), int(argv[2])
    out: dict[str, Any] = {}

    async def go() -> None:
        try:
            out.update(await measure(url, posts, rounds))
        except Exception as e:
            print(repr(e), file=sys.stderr)
        finally:
            reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(go()))
    reactor.run()
    print(json.dumps(out))
    return 0 if out else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
