"""The due rows as a durable queue, on both stores, time driven by a Clock and webhooks sent
to a real receiver: the same id on every retry, no double sends between daemons, a claim
held by a dead daemon let go, the drop after a day counted in /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_twisted
from prometheus_client import generate_latest
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater

from chatire.metrics import MeteredEngine, Metrics
from chatire.model import Post, utc_from_timestamp
from chatire.notify.dispatcher import (
    BATCH,
    FINISH_EVERY,
    GIVE_UP,
    HOLD,
    INTERVAL,
    MAX_IN_FLIGHT,
    Dispatcher,
    retry_delay,
)
from chatire.notify.payload import SHOWN, composer
from chatire.notify.planner import new_id
from chatire.notify.settings import NotifySettings, Webhook
from chatire.notify.webhook import WebhookClient
from chatire.store import store_from_url
from chatire.store.notify import READ_AT_MOST
from chatire.store.sqlstore import SQLStore
from tests.support.receiver import Receiver

START = 1_800_000_000.0


@pytest_twisted.async_yield_fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = await Receiver().start()
    yield hook
    await hook.stop()


@pytest_twisted.async_yield_fixture
async def store(db_url: str) -> AsyncIterator[SQLStore]:
    opened = store_from_url(db_url, reactor)
    await opened.start()
    yield opened
    await opened.stop()


class World:
    """A chat of alice and bob; bob's webhook is the receiver; notifications due at START."""

    def __init__(self, store: SQLStore, receiver: Receiver) -> None:
        self.store = store
        self.receiver = receiver
        self.clock = Clock()
        self.clock.advance(START)
        self.metrics = Metrics(self.clock, process=False)

    async def setup(self, chats: int = 1) -> None:
        now = utc_from_timestamp(START - 10)
        self.alice = await self.store.create_user("alice", "x", "Alice", now)
        self.bob = await self.store.create_user("bob", "x", "Bob", now)
        await self.store.save_notify_settings(
            self.bob.id, NotifySettings("all", 0, Webhook(self.receiver.url, "k"), None))
        self.chats = []
        for i in range(chats):
            chat = await self.store.create_chat(f"chat{i:04d}", f"Chat {i}", self.alice.id, now)
            await self.store.add_member(chat, self.bob, now)
            await self.store.append_messages(chat, [Post(self.alice.id, f"hello {i}", None)], now)
            roster = await self.store.roster(chat.uri)
            assert roster is not None and [e.username for e in roster.entries] == ["bob"]
            await self.store.add_due(roster.chat_id, [(new_id(), self.bob.id, 1,
                                                       utc_from_timestamp(START))], now)
            self.chats.append(chat)

    def dispatcher(self, online: Any = None) -> Dispatcher:
        return Dispatcher(self.store, self.clock, composer(lambda: "https://chat.example.org"),
                          online=online or (lambda uri, user: False), counters=self.metrics,
                          webhooks=WebhookClient(reactor, allow_private=True), mail=None)

    def counted(self, name: str) -> float:
        for line in generate_latest(self.metrics.registry).decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")


@pytest_twisted.ensureDeferred
async def test_a_failed_delivery_is_retried_with_the_same_id_and_then_left_alone(
        store: SQLStore, receiver: Receiver) -> None:
    world = World(store, receiver)
    await world.setup()
    receiver.statuses = [500]
    dispatcher = world.dispatcher()
    await dispatcher.tick()
    assert len(receiver.requests) == 1
    world.clock.advance(retry_delay(0) - 1)
    await dispatcher.tick()  # not due yet
    assert len(receiver.requests) == 1
    world.clock.advance(1)
    await dispatcher.tick()
    first, second = receiver.requests
    assert first.body == second.body and first.json["id"] == second.json["id"]
    assert second.signed_by("k")
    for _ in range(5):
        world.clock.advance(HOLD)
        await dispatcher.tick()
    assert len(receiver.requests) == 2
    assert world.counted('chatire_notifications_sent_total{channel="webhook"}') == 1
    assert world.counted('chatire_notification_failures_total{channel="webhook"}') == 1


def test_retries_wait_longer_each_time_and_at_most_an_hour() -> None:
    delays = [retry_delay(n) for n in range(12)]
    assert delays[0] <= 10 and delays == sorted(delays) and delays[-1] == 3600


@pytest_twisted.ensureDeferred
async def test_two_daemons_never_send_one_notification_twice(
        store: SQLStore, receiver: Receiver, db_url: str) -> None:
    world = World(store, receiver)
    await world.setup(chats=30)
    other = store_from_url(db_url, reactor)
    await other.start()
    try:
        first = world.dispatcher()
        second = World(other, receiver)
        second.clock = world.clock
        two = second.dispatcher()
        for _ in range(3):  # both look at once, again and again
            await defer.gatherResults([first.tick() or defer.succeed(None),
                                       two.tick() or defer.succeed(None)])
        ids = receiver.ids()
        assert len(ids) == 30 and len(set(ids)) == 30
        assert {r.json["chat"]["uri"] for r in receiver.requests} == {
            c.uri for c in world.chats}
    finally:
        await other.stop()


@pytest_twisted.ensureDeferred
async def test_a_claim_held_by_a_daemon_that_died_is_let_go_after_the_hold(
        store: SQLStore, receiver: Receiver) -> None:
    world = World(store, receiver)
    await world.setup()
    now = utc_from_timestamp(START)
    # A daemon claimed it and died before sending.
    [_] = await store.claim_due(now, now + timedelta(seconds=HOLD), 20)
    dispatcher = world.dispatcher()
    await dispatcher.tick()
    assert receiver.requests == []  # held
    world.clock.advance(HOLD)
    await dispatcher.tick()
    [got] = await receiver.wait_for(1)
    assert got.json["messages"][0]["message"] == "hello 0"


@pytest_twisted.ensureDeferred
async def test_a_member_online_at_due_time_is_not_notified(
        store: SQLStore, receiver: Receiver) -> None:
    world = World(store, receiver)
    await world.setup()
    await world.dispatcher(online=lambda uri, user: True).tick()
    world.clock.advance(HOLD * 2)
    await world.dispatcher().tick()
    assert receiver.requests == []  # the burst ended when bob was seen here


@pytest.mark.parametrize("status", [500, 302, 404])
@pytest_twisted.ensureDeferred
async def test_a_notification_failing_for_a_day_is_dropped_and_counted(
        store: SQLStore, receiver: Receiver, status: int) -> None:
    world = World(store, receiver)
    await world.setup()
    receiver.statuses = [status] * 1000
    dispatcher = world.dispatcher()
    await dispatcher.tick()
    while world.clock.seconds() - START < GIVE_UP + 3600:
        world.clock.advance(retry_delay(10))
        await dispatcher.tick()
    attempts = len(receiver.requests)
    assert 20 <= attempts <= 40 and len(set(receiver.ids())) == 1
    assert world.counted("chatire_notifications_dropped_total") == 1
    world.clock.advance(GIVE_UP)
    await dispatcher.tick()
    assert len(receiver.requests) == attempts  # gone


@pytest_twisted.ensureDeferred
async def test_a_receiver_that_never_answers_holds_nobody_elses_notification(
        store: SQLStore, receiver: Receiver) -> None:
    silent = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    world = World(store, receiver)
    await world.setup()
    now = utc_from_timestamp(START - 10)
    carol = await store.create_user("carol", "x", "Carol", now)
    chat = world.chats[0]
    await store.add_member(chat, carol, now)
    await store.append_messages(chat, [Post(world.alice.id, "for carol too", None)], now)
    await store.save_notify_settings(carol.id, NotifySettings(
        "all", 0, Webhook(f"http://127.0.0.1:{silent.getHost().port}/", None), None))
    await store.add_due(chat.id, [(new_id(), carol.id, 4, utc_from_timestamp(START))], now)
    dispatcher = Dispatcher(store, world.clock, composer(lambda: "https://chat.example.org"),
                            online=lambda uri, user: False, counters=world.metrics,
                            webhooks=WebhookClient(reactor, allow_private=True, timeout=2.0),
                            mail=None)
    dispatcher.start()
    try:
        world.clock.advance(1.0)  # one look: both claimed, both started
        [got] = await receiver.wait_for(1, timeout=1.5)  # well before carol's times out
        assert got.json["user"]["username"] == "bob"
    finally:
        await dispatcher.stop()  # carol's attempt ends at its timeout
        await silent.stopListening()
    assert world.counted('chatire_notification_failures_total{channel="webhook"}') == 1


@pytest_twisted.ensureDeferred
async def test_a_claim_is_prepared_in_one_transaction_and_its_rows_deleted_in_one(
        store: SQLStore, receiver: Receiver) -> None:
    world = World(store, receiver)
    await world.setup(chats=30)
    metered = SQLStore(MeteredEngine(store.engine, world.metrics))
    dispatcher = Dispatcher(metered, world.clock, composer(lambda: "https://chat.example.org"),
                            online=lambda uri, user: False, counters=world.metrics,
                            webhooks=WebhookClient(reactor, allow_private=True), mail=None)
    await dispatcher.tick()
    assert len(set(receiver.ids())) == 30 == len(receiver.requests)
    counts = {q: world.counted(f'chatire_store_query_seconds_count{{query="{q}"}}')
              for q in ("claim_due", "prepare_due", "finish_due")}
    assert counts == {"claim_due": 1, "prepare_due": 1, "finish_due": 1}
    world.clock.advance(HOLD * 2)
    await dispatcher.tick()
    assert len(receiver.requests) == 30  # all deleted: none sent again


@pytest_twisted.ensureDeferred
async def test_more_rows_than_a_claim_takes_go_in_several_each_finished_once(
        store: SQLStore, receiver: Receiver) -> None:
    world = World(store, receiver)
    await world.setup(chats=BATCH + 7)
    dispatcher = world.dispatcher()
    await dispatcher.tick()
    ids = receiver.ids()
    assert len(ids) == BATCH + 7 == len(set(ids))
    world.clock.advance(HOLD * 2)
    await dispatcher.tick()
    assert len(receiver.requests) == BATCH + 7


@pytest_twisted.ensureDeferred
async def test_a_running_dispatcher_deletes_delivered_rows_within_moments(
        store: SQLStore, receiver: Receiver) -> None:
    world = World(store, receiver)
    await world.setup(chats=3)
    dispatcher = world.dispatcher()
    dispatcher.start()
    try:
        world.clock.advance(INTERVAL)
        await receiver.wait_for(3)
        for _ in range(100):  # the deliveries land, then the finish waits FINISH_EVERY
            await deferLater(reactor, 0.01, lambda: None)
            world.clock.advance(FINISH_EVERY)
        now = utc_from_timestamp(world.clock.seconds() + HOLD * 2)
        assert await store.claim_due(now, now, 100) == []  # no row left to claim
    finally:
        await dispatcher.stop()


@pytest_twisted.ensureDeferred
async def test_one_claim_of_one_chat_gives_each_member_their_own_due_messages(
        store: SQLStore, receiver: Receiver) -> None:
    """The chat's messages are read once for the claim's rows; a member whose own posts
    fill that read is read alone, and one with more than READ_AT_MOST due gets the count."""
    world = World(store, receiver)
    await world.setup()
    chat, now = world.chats[0], utc_from_timestamp(START - 5)
    carol = await store.create_user("carol", "x", "Carol", now)
    await store.add_member(chat, carol, now)
    await store.save_notify_settings(
        carol.id, NotifySettings("all", 0, Webhook(receiver.url, None), None))
    await store.append_messages(chat, [Post(world.bob.id, f"bob {i}", None)
                                       for i in range(2 * READ_AT_MOST + 50)], now)
    await store.append_messages(chat, [Post(world.alice.id, "last", None)], now)
    await store.add_due(chat.id, [(new_id(), carol.id, 1, utc_from_timestamp(START))], now)
    await world.dispatcher().tick()
    got = {r.json["user"]["username"]: r.json for r in await receiver.wait_for(2)}
    assert [m["message"] for m in got["bob"]["messages"]] == ["hello 0", "last"]
    assert got["bob"]["more"] == 0
    others = 2 * READ_AT_MOST + 51  # since carol joined: bob's and alice's last
    assert len(got["carol"]["messages"]) == SHOWN and got["carol"]["more"] == others - SHOWN
    assert got["carol"]["messages"][0]["message"] == "bob 0"


@pytest_twisted.ensureDeferred
async def test_a_look_that_ran_out_of_room_goes_on_once_room_is_free(
        store: SQLStore, receiver: Receiver) -> None:
    """More due than MAX_IN_FLIGHT: the rest go as soon as deliveries land, without
    waiting for the next look (the clock moves once)."""
    world = World(store, receiver)
    await world.setup()
    chat, now = world.chats[0], utc_from_timestamp(START - 5)
    users = []
    for i in range(MAX_IN_FLIGHT + 30):
        user = await store.create_user(f"away{i}", "x", f"Away {i}", now)
        await store.add_member(chat, user, now)
        await store.save_notify_settings(
            user.id, NotifySettings("all", 0, Webhook(receiver.url, None), None))
        users.append(user)
    await store.append_messages(chat, [Post(world.alice.id, "for everyone", None)], now)
    await store.add_due(chat.id, [(new_id(), u.id, 1, utc_from_timestamp(START))
                                  for u in users], now)
    dispatcher = world.dispatcher()
    dispatcher.start()
    try:
        world.clock.advance(INTERVAL)  # the only look the loop makes
        got = await receiver.wait_for(MAX_IN_FLIGHT + 31, timeout=20)
        assert len({r.json["id"] for r in got}) == len(got) == MAX_IN_FLIGHT + 31
    finally:
        await dispatcher.stop()


@pytest_twisted.ensureDeferred
async def test_deleting_a_user_or_a_chat_finds_its_due_rows_by_index(store: SQLStore) -> None:
    """The cascades from users and chats to notify_due have an index each (migration 10);
    without them a delete scans every due row once per user or chat deleted."""

    async def plan(cur: Any) -> str:
        if store.dialect == "postgresql":
            await cur.execute("SET LOCAL enable_seqscan = off")
            lines = []
            for column in ("user_id", "chat_id"):
                await cur.execute(f"EXPLAIN DELETE FROM notify_due WHERE {column} = 1")
                lines += [row[0] for row in cur.fetchall()]
            return "\n".join(lines)
        lines = []
        for column in ("user_id", "chat_id"):
            await cur.execute(f"EXPLAIN QUERY PLAN DELETE FROM notify_due WHERE {column} = 1")
            lines += [str(row[-1]) for row in cur.fetchall()]
        return "\n".join(lines)

    shown = await store.engine.run(plan)
    assert "notify_due_user" in shown and "notify_due_chat" in shown, shown
