"""How fast the broker takes a daemon's bindings: per-chat exchanges against a sharded set.

`python -m bench.bindrate AMQP_URL CHATS ROUNDS` (a vhost of its own: every exchange it
makes is left for the caller to delete with the vhost) prints one JSON object: seconds
to bind one fresh queue to CHATS chats, for each way of binding, the median of ROUNDS
(bench/analysis.md, issue #20):

- ``perchat declare+bind xK``: a fanout exchange per chat, declared then bound, on K
  channels (the first time a daemon binds: the exchanges are new);
- ``perchat bind xK``: the same exchanges, known to exist, bound without a declare (a
  rebind after a lost link or a broker restart: exchanges are durable);
- ``sharded bind xK``: SHARDS durable direct exchanges, the chat's uri as routing key.

The queue is deleted (and its bindings with it) before the next way starts. Every
way sends BATCH binds nowait on a channel, the last of them waiting for its
answer (the broker handles a channel's methods in order), one batch in flight a channel.
Run on a reactor of its own, in a child process of the bench.
"""

from __future__ import annotations

import json
import secrets
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import ClientCreator

SHARDS = 64
BATCH = 200

reactor: Any = _reactor


def shard(uri: str) -> str:
    return f"chatire.shard.{zlib.crc32(uri.encode()) % SHARDS}"


async def _connect(url: str) -> Any:
    params = pika.URLParameters(url)
    conn = await ClientCreator(reactor, TwistedProtocolConnection, params).connectTCP(
        params.host, params.port)
    await conn.ready
    return conn


async def _lane(chan: Any, queue: str, work: list[tuple[str, str]], declare: str | None) -> None:
    """Bind ``(exchange, routing key)`` pairs BATCH at a time on one channel."""
    raw = chan._channel
    for start in range(0, len(work), BATCH):
        batch = work[start:start + BATCH]
        for exchange, key in batch[:-1]:
            if declare:
                raw.exchange_declare(exchange=exchange, exchange_type=declare, durable=True)
            raw.queue_bind(queue=queue, exchange=exchange, routing_key=key)
        exchange, key = batch[-1]
        if declare:
            raw.exchange_declare(exchange=exchange, exchange_type=declare, durable=True)
        await chan.queue_bind(queue=queue, exchange=exchange, routing_key=key)


async def bind_all(url: str, pairs: list[tuple[str, str]], channels: int,
                   declare: str | None) -> float:
    """Seconds to bind a fresh exclusive queue to every pair, spread over ``channels``."""
    conn = await _connect(url)
    try:
        chans = [await conn.channel() for _ in range(channels)]
        frame = await chans[0].queue_declare(queue="", exclusive=True)
        queue = frame.method.queue
        started = time.perf_counter()
        lanes = [Deferred.fromCoroutine(_lane(chan, queue, pairs[i::channels], declare))
                 for i, chan in enumerate(chans)]
        await DeferredList(lanes, fireOnOneErrback=True, consumeErrors=True)
        seconds = time.perf_counter() - started
        # Its bindings go with it: wait for that, so the next way does not pay for it.
        await chans[0].queue_delete(queue=queue)
        return seconds
    finally:
        conn.close()


async def measure(url: str, chats: int, rounds: int) -> dict[str, Any]:
    uris = [secrets.token_urlsafe(16) for _ in range(chats)]
    perchat = [("chatire.chat." + uri, "") for uri in uris]
    sharded = [(shard(uri), uri) for uri in uris]
    conn = await _connect(url)
    chan = await conn.channel()
    for n in range(SHARDS):
        await chan.exchange_declare(exchange=f"chatire.shard.{n}", exchange_type="direct",
                                    durable=True)
    conn.close()
    runs: list[tuple[str, Callable[[], Any]]] = [
        ("perchat declare+bind x1", lambda: bind_all(url, perchat, 1, "fanout")),
        ("perchat declare+bind x4", lambda: bind_all(url, perchat, 4, "fanout")),
        ("perchat bind x1", lambda: bind_all(url, perchat, 1, None)),
        ("perchat bind x4", lambda: bind_all(url, perchat, 4, None)),
        ("sharded bind x4", lambda: bind_all(url, sharded, 4, None)),
    ]
    # (The first declares the exchanges: it runs once before the rounds.) Rounds go
    # forwards, then backwards; the median of each way.
    await runs[0][1]()
    seconds: dict[str, list[float]] = {label: [] for label, _ in runs}
    for round_ in range(rounds):
        for label, run in (runs if round_ % 2 == 0 else runs[::-1]):
            seconds[label].append(await run())
    return {**{label: round(statistics.median(values), 2) for label, values in seconds.items()},
            "runs": {label: [round(v, 2) for v in values] for label, values in seconds.items()}}


def main(argv: list[str]) -> int:
    url, chats, rounds = argv[0], int(argv[1]), int(argv[2])
    out: dict[str, Any] = {}

    async def go() -> None:
        try:
            out.update(await measure(url, chats, rounds))
        finally:
            reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(go()))
    reactor.run()
    print(json.dumps(out))
    return 0 if out else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
