"""/metrics: Prometheus text from a per-daemon registry; values move with posts and deliveries."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThreadPool

from chatire.metrics import MeteredBus, Metrics
from tests.support.client import Api, Socket
from tests.support.daemons import free_port, fresh_vhost, rabbitmqctl, sleep


async def scrape(url: str) -> dict[str, float]:
    """Every sample of a /metrics page by name and labels, e.g. ``x_total`` or ``x{a="b"}``."""
    response = await treq.get(url, persistent=False)
    text = (await response.content()).decode()
    assert response.code == 200, text
    assert response.headers.getRawHeaders("content-type")[0].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


async def metered(make_daemon: Any, **options: Any) -> Any:
    """A daemon with a metrics listener of its own; ``metrics_url`` is where to scrape."""
    port = free_port()
    daemon = await make_daemon(metrics_listen=(f"tcp:{port}:interface=127.0.0.1",), **options)
    daemon.metrics_url = f"http://127.0.0.1:{port}/metrics"
    return daemon


@pytest_twisted.ensureDeferred
async def test_metrics_move_after_posts_and_deliveries(make_daemon: Any) -> None:
    daemon = await metered(make_daemon)
    other = await metered(make_daemon)  # a second daemon in this process keeps its own registry
    url = daemon.metrics_url
    before = await scrape(url)
    assert before["chatire_messages_posted_total"] == 0
    assert before["chatire_open_sockets"] == 0
    assert before["chatire_bus_connected"] == 1

    api = Api(daemon.base_url)
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    readers = [await Socket.open(daemon.base_url, user.token) for user in (alice, bob)]
    for reader in readers:
        await reader.subscribe(uri)
    during = await scrape(url)
    assert during["chatire_open_sockets"] == 2
    assert during["chatire_subscriptions"] == 2

    for i in range(3):
        await alice.post(uri, f"hello {i}")
    for reader in readers:
        for _ in range(3):
            await reader.next_of("message")
    after = await scrape(url)
    assert after["chatire_messages_posted_total"] == 3
    assert after["chatire_messages_delivered_total"] == 6  # 3 messages x 2 sockets
    assert after["chatire_delivery_latency_seconds_count"] == 3  # once per message
    assert 0 <= after["chatire_delivery_latency_seconds_sum"] < 3 * 1.0
    assert after["chatire_bus_publish_confirms_total"] >= 3
    assert after["chatire_bus_publish_failures_total"] == 0
    assert after['chatire_store_query_seconds_count{query="append_messages"}'] == 3
    assert after['chatire_store_query_seconds_count{query="token_session"}'] >= 5
    assert after["process_open_fds"] > 0

    # A resume with after is a fill from the store.
    late = await Socket.open(daemon.base_url, bob.token)
    await late.subscribe(uri, after=1)
    assert (await late.next_of("message"))["seq"] == 2
    assert (await scrape(url))["chatire_gap_fills_total"] >= 1

    # A slow-reader close (4008) is counted once.
    server_side = [c for c in daemon.hub.connections() if c.user and c.user.id == alice.id]
    server_side[0].close(4008, "reading too slowly")
    assert await readers[0].closed == 4008
    final = await scrape(url)
    assert final["chatire_slow_reader_closes_total"] == 1
    assert final["chatire_open_sockets"] == 2  # bob's two sockets

    # The other daemon counted nothing of this.
    assert (await scrape(other.metrics_url))["chatire_messages_posted_total"] == 0
    await readers[1].close()
    await late.close()


@pytest_twisted.ensureDeferred
async def test_control_events_published_are_counted(make_daemon: Any) -> None:
    """One presence change is one control event; a read mark is one more (the benchmarks
    count broker messages per change with this)."""
    daemon = await metered(make_daemon)
    url = daemon.metrics_url
    api = Api(daemon.base_url)
    alice = await api.user()
    uri = await alice.new_chat()
    await alice.post(uri, "one")
    phone = await Socket.open(daemon.base_url, alice.token)
    laptop = await Socket.open(daemon.base_url, alice.token)
    before = (await scrape(url))["chatire_control_published_total"]
    await phone.subscribe(uri)
    online = (await scrape(url))["chatire_control_published_total"]
    assert online == before + 1  # alice came online in the chat
    await laptop.subscribe(uri)  # her second socket: no change, nothing published
    assert (await scrape(url))["chatire_control_published_total"] == online
    phone.send({"type": "read", "chat": uri, "seq": 1})
    assert (await laptop.next_of("read"))["seq"] == 1
    assert (await scrape(url))["chatire_control_published_total"] == online + 1
    # Spaced out, each went alone: as many bus messages as events.
    scraped = await scrape(url)
    assert scraped["chatire_control_messages_total"] == scraped[
        "chatire_control_published_total"] > 0
    await phone.close()
    await laptop.close()


@pytest_twisted.ensureDeferred
async def test_store_errors_are_counted(make_daemon: Any) -> None:
    daemon = await metered(make_daemon)
    api = Api(daemon.base_url)
    await api.user("carol")
    status, _ = await api.call("POST", "/api/auth/register",
                               {"username": "carol", "password": "another horse"})
    assert status == 409  # a refusal (taken name): not a store error
    samples = await scrape(daemon.metrics_url)
    assert samples['chatire_store_errors_total{query="create_user"}'] == 0
    daemon.store.engine._engine._close()  # the SQLite connection goes away under the daemon
    status, _ = await api.call("GET", "/api/me", token="whatever")
    assert status == 503
    samples = await scrape(daemon.metrics_url)
    assert samples['chatire_store_errors_total{query="token_session"}'] == 1


@pytest_twisted.ensureDeferred
async def test_metrics_are_never_on_the_public_port(make_daemon: Any) -> None:
    for daemon in (await make_daemon(), await metered(make_daemon)):
        response = await treq.get(daemon.base_url + "/metrics", persistent=False)
        body = await response.content()
        assert response.code == 404
        assert b"chatire_" not in body
    samples = await scrape(daemon.metrics_url)
    assert "chatire_messages_posted_total" in samples
    response = await treq.get(daemon.metrics_url.replace("/metrics", "/api/me"),
                              persistent=False)
    assert response.code == 404  # the metrics port serves /metrics and nothing else
    await response.content()


class _FakeBus:
    connected = True

    def __init__(self) -> None:
        self.reconnect: Any = None

    def start(self, on_message: Any, on_reconnect: Any) -> None:
        self.reconnect = on_reconnect

    def publish(self, chat_uri: str, seq: int, payload: bytes) -> Any:
        if seq == 13:
            from twisted.internet.defer import fail

            return fail(RuntimeError("nack"))
        return succeed(None)


def test_bus_reconnects_confirms_and_failures_are_counted() -> None:
    metrics = Metrics(reactor, process=False)
    inner = _FakeBus()
    bus = MeteredBus(inner, metrics)  # type: ignore[arg-type]
    ups: list[int] = []
    bus.start(lambda *a: None, lambda: ups.append(1))
    for _ in range(3):
        inner.reconnect()
    assert len(ups) == 3
    assert metrics.bus_reconnects._value.get() == 2  # the first connect is not a reconnect
    bus.publish("c", 1, b"{}")
    failed = bus.publish("c", 13, b"{}")
    errors: list[Any] = []
    failed.addErrback(errors.append)  # the failure still reaches the caller
    assert len(errors) == 1
    assert metrics.bus_confirms._value.get() == 1
    assert metrics.bus_failures._value.get() == 1


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_broker_fault_shows_as_a_reconnect(make_daemon: Any) -> None:
    with fresh_vhost() as (vhost, amqp):
        daemon = await metered(make_daemon, bus=amqp)
        url = daemon.metrics_url
        for _ in range(100):
            if (await scrape(url))["chatire_bus_connected"] == 1:
                break
            await sleep(0.05)
        assert (await scrape(url))["chatire_bus_reconnects_total"] == 0
        await deferToThreadPool(reactor, reactor.getThreadPool(), rabbitmqctl,
                                "close_all_connections", "--vhost", vhost, "test fault")
        for _ in range(200):
            samples = await scrape(url)
            if samples["chatire_bus_reconnects_total"] == 1 and samples[
                    "chatire_bus_connected"] == 1:
                break
            await sleep(0.05)
        else:
            raise AssertionError(f"no reconnect seen: {samples}")
        await daemon.stopService()


@pytest_twisted.ensureDeferred
async def test_build_info_names_the_installed_release(make_daemon: Any) -> None:
    from importlib.metadata import version

    daemon = await metered(make_daemon)
    samples = await scrape(daemon.metrics_url)
    assert samples[f'chatire_build_info{{version="{version("chatire")}"}}'] == 1


@pytest_twisted.ensureDeferred
async def test_liveness_and_readiness_on_both_ports(make_daemon: Any) -> None:
    daemon = await metered(make_daemon)
    operator = daemon.metrics_url.rsplit("/", 1)[0]

    async def get(url: str) -> tuple[int, Any]:
        response = await treq.get(url, persistent=False)
        return response.code, await response.json()

    for base in (daemon.base_url, operator):
        assert await get(base + "/livez") == (200, {"status": "ok"})
        assert await get(base + "/healthz") == (200, {"store": "ok", "bus": "ok"})
    response = await treq.get(operator + "/api/config", persistent=False)
    await response.content()
    assert response.code == 404  # the operator port serves the probes and /metrics only

    # The bus goes away: not ready (503), still alive (200): liveness checks nothing else.
    await daemon.bus.stop()
    for base in (daemon.base_url, operator):
        assert await get(base + "/livez") == (200, {"status": "ok"})
        assert await get(base + "/healthz") == (503, {"store": "ok", "bus": "unavailable"})
