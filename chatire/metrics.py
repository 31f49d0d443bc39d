"""Prometheus metrics of one daemon: its own registry, cheap hooks, and the /metrics resource."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from zope.interface import implementer

from chatire import __version__
from chatire.errors import ChatireError, Unavailable
from chatire.interfaces import IBus
from chatire.model import Event, Message
from chatire.waiters import Waiters

#: Seconds; delivery is usually well under 10 ms, a broker outage heals in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds; one transaction on SQLite or PostgreSQL.
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: A message older than this when its frame is prepared is history being replayed,
#: not live delivery: it is left out of the latency histogram.
LIVE_WINDOW = 60.0

_CREATED_AT = b'"created_at":"'
#: The attribute a prepared frame carries until its first hand-over is timed.
_STAMP = "chatire_committed_at"


class Metrics:
    """The collectors of one daemon, in a CollectorRegistry of its own (never the global one)."""

    def __init__(self, clock: IReactorTime, *, process: bool = True) -> None:
        self.clock = clock
        self.registry = CollectorRegistry()
        r = self.registry
        self.posted = Counter("chatire_messages_posted", "Messages committed by this daemon",
                              registry=r)
        #: Frames handed to sockets: a plain int, the cheapest thing on the fanout path.
        self.delivered = 0
        self.delivery_latency = Histogram(
            "chatire_delivery_latency_seconds",
            "Commit (the message's created_at) to its frame's first hand-over to a socket "
            "transport on this daemon, once per live message",
            buckets=LATENCY_BUCKETS, registry=r)
        self.slow_reader_closes = Counter(
            "chatire_slow_reader_closes", "Sockets closed with 4008 for reading too slowly",
            registry=r)
        self.bus_confirms = Counter("chatire_bus_publish_confirms",
                                    "Bus publishes the broker confirmed", registry=r)
        self.bus_failures = Counter("chatire_bus_publish_failures",
                                    "Bus publishes that failed (healed from the store)",
                                    registry=r)
        self.bus_reconnects = Counter("chatire_bus_reconnects",
                                      "Times the bus link came back after the first connect",
                                      registry=r)
        self.store_latency = Histogram("chatire_store_query_seconds",
                                       "Store transactions by query", ["query"],
                                       buckets=QUERY_BUCKETS, registry=r)
        self.store_errors = Counter("chatire_store_errors",
                                    "Store transactions that failed (not a refusal)", ["query"],
                                    registry=r)
        self.notifications = Counter(
            "chatire_notifications_sent", "Notifications a channel took (a 2xx from the "
            "webhook, the relay accepted the mail)", ["channel"], registry=r)
        self.notification_failures = Counter(
            "chatire_notification_failures", "Notification attempts that failed (retried)",
            ["channel"], registry=r)
        self.notifications_dropped = Counter(
            "chatire_notifications_dropped", "Notifications given up on after a day of "
            "failed attempts", registry=r)
        # chatire_build_info{version="..."} 1: which release each daemon runs.
        Info("chatire_build", "The chatire release this daemon runs",
             registry=r).info({"version": __version__})
        self._bus_links = 0
        self._queries: dict[str, tuple[Any, Any]] = {}
        if process:
            ProcessCollector(registry=r)

    # -- gauges and counters read from the daemon's own state --------------------

    def watch(self, *, sockets: Callable[[], float], subscriptions: Callable[[], float],
              gap_fills: Callable[[], float], bus_connected: Callable[[], float],
              control_published: Callable[[], float],
              control_messages: Callable[[], float]) -> None:
        """Export values the daemon keeps anyway, read at scrape time (no hot-path cost)."""
        r = self.registry
        Gauge("chatire_open_sockets", "Open WebSocket connections",
              registry=r).set_function(sockets)
        Gauge("chatire_subscriptions", "Socket subscriptions to chats",
              registry=r).set_function(subscriptions)
        Gauge("chatire_bus_connected", "1 while the bus link is up",
              registry=r).set_function(bus_connected)
        r.register(_CallbackCounters([
            ("chatire_messages_delivered", "Message frames handed to sockets",
             lambda: self.delivered),
            ("chatire_gap_fills", "Store fetches started to bring a subscription up to date "
             "(a live gap, a sweep, or a resume with after)", gap_fills),
            ("chatire_control_published", "Control events published on the bus (read marks, "
             "presence changes and snapshots, leaves, sign-outs...)", control_published),
            ("chatire_control_messages", "Bus messages that carried them (the events that "
             "come while one waits for its confirm go together in the next)", control_messages),
        ]))

    # -- notifications (chatire.notify.dispatcher.Counters) ----------------------------

    def notification_sent(self, channel: str) -> None:
        self.notifications.labels(channel).inc()

    def notification_failed(self, channel: str) -> None:
        self.notification_failures.labels(channel).inc()

    def notification_dropped(self) -> None:
        self.notifications_dropped.inc()

    # -- hooks ----------------------------------------------------------------------

    def stamp(self, frame: Any, payload: bytes) -> Any:
        """Mark a freshly prepared message frame with its commit time (once per message)."""
        at = payload.rfind(_CREATED_AT)
        if at < 0:
            return frame  # typing: not a message
        start = at + len(_CREATED_AT)
        try:
            created = datetime.fromisoformat(payload[start:start + 24].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return frame
        committed = created.timestamp()
        if self.clock.seconds() - committed <= LIVE_WINDOW:
            setattr(frame, _STAMP, committed)
        return frame

    def frame_delivered(self, frame: Any) -> None:
        """A frame went to a socket's transport: count it; time the first hand-over."""
        self.delivered += 1
        committed = getattr(frame, _STAMP, None)
        if committed is not None:
            setattr(frame, _STAMP, None)
            self.delivery_latency.observe(max(0.0, self.clock.seconds() - committed))

    def slow_reader_closed(self) -> None:
        """A socket was closed with 4008 for reading too slowly."""
        self.slow_reader_closes.inc()

    def query_done(self, name: str, seconds: float, failed: bool) -> None:
        children = self._queries.get(name)
        if children is None:
            children = (self.store_latency.labels(name), self.store_errors.labels(name))
            self._queries[name] = children
        children[0].observe(seconds)
        if failed:
            children[1].inc()

    def bus_up(self) -> None:
        self._bus_links += 1
        if self._bus_links > 1:
            self.bus_reconnects.inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class _CallbackCounters(Collector):
    """Counters whose values live elsewhere (plain ints on the hot path)."""

    def __init__(self, counters: list[tuple[str, str, Callable[[], float]]]) -> None:
        self._counters = counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, help_text, read in self._counters:
            yield CounterMetricFamily(name, help_text, value=read())

    def describe(self) -> Iterator[CounterMetricFamily]:
        for name, help_text, _ in self._counters:
            yield CounterMetricFamily(name, help_text)


class MetricsResource(Resource):
    """GET /metrics: the registry in Prometheus text format, rendered in the reactor thread."""

    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return self._metrics.exposition()


class MetricsOnly(Resource):
    """The root of a --metrics-listen port: /metrics and the probes given, nothing else (404)."""

    def __init__(self, metrics: IResource, **probes: IResource) -> None:
        super().__init__()
        self.putChild(b"metrics", metrics)
        for name, probe in probes.items():
            self.putChild(name.encode("ascii"), probe)

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        return notFound()

    def render(self, request: IRequest) -> bytes:
        return notFound().render(request)


class MeteredEvents:
    """ChatEvents that count committed messages and pass everything on."""

    def __init__(self, events: Any, metrics: Metrics,
                 also: Callable[[Message], Deferred[None] | None] | None = None) -> None:
        self._events = events
        self._metrics = metrics
        self._also = also  # another reader of committed messages (notifications)

    def message_committed(self, message: Message) -> Deferred[None] | None:
        self._metrics.posted.inc()
        self._events.message_committed(message)
        return None if self._also is None else self._also(message)

    def event_committed(self, event: Event) -> None:
        self._events.event_committed(event)

    def read_marked(self, chat_uri: str, user_id: int, seq: int, origin: object) -> None:
        self._events.read_marked(chat_uri, user_id, seq, origin)

    def membership_ended(self, chat_uri: str, user_id: int, reason: str,
                         seq: int | None = None) -> None:
        self._events.membership_ended(chat_uri, user_id, reason, seq)

    def chat_deleted(self, chat_uri: str) -> None:
        self._events.chat_deleted(chat_uri)

    def chats_changed(self, user_ids: list[int]) -> None:
        self._events.chats_changed(user_ids)

    def tokens_revoked(self, token_hashes: list[str]) -> None:
        self._events.tokens_revoked(token_hashes)


@implementer(IBus)
class MeteredBus:
    """An IBus that counts publish confirms, failures and reconnects of the bus it wraps."""

    def __init__(self, bus: IBus, metrics: Metrics) -> None:
        self._bus = bus
        self._metrics = metrics
        self.in_flight = 0  # publishes neither confirmed nor failed yet
        self._settled: Waiters[None] = Waiters()

    @property
    def connected(self) -> bool:
        return bool(self._bus.connected)

    def start(self, on_message: Any, on_reconnect: Callable[[], None]) -> None:
        def reconnected() -> None:
            self._metrics.bus_up()
            on_reconnect()

        self._bus.start(on_message, reconnected)

    def stop(self) -> Deferred[None]:
        d: Deferred[None] = self._bus.stop()
        return d

    def publish(self, chat_uri: str, seq: int, payload: bytes) -> Deferred[None]:
        d: Deferred[None] = self._bus.publish(chat_uri, seq, payload)
        self.in_flight += 1
        d.addCallbacks(self._confirmed, self._failed)
        return d

    def settled(self) -> Deferred[None]:
        """Fire once every publish so far is confirmed or failed (a graceful stop waits)."""
        if self.in_flight:
            return self._settled.wait()
        return succeed(None)

    def _done(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self._settled.fire(None)

    def _confirmed(self, result: None) -> None:
        self._metrics.bus_confirms.inc()
        self._done()
        return result

    def _failed(self, failure: Failure) -> Failure:
        self._metrics.bus_failures.inc()
        self._done()
        return failure

    def follow(self, chat_uri: str) -> None:
        self._bus.follow(chat_uri)

    def unfollow(self, chat_uri: str) -> None:
        self._bus.unfollow(chat_uri)

    def remove(self, chat_uri: str) -> None:
        self._bus.remove(chat_uri)


class MeteredEngine:
    """A store Engine that times every transaction and counts the ones that fail."""

    def __init__(self, engine: Any, metrics: Metrics) -> None:
        self._engine = engine
        self._metrics = metrics
        self.dialect: str = engine.dialect

    def connect(self) -> Deferred[None]:
        d: Deferred[None] = self._engine.connect()
        return d

    def close(self) -> Deferred[None]:
        d: Deferred[None] = self._engine.close()
        return d

    def run(self, txn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        name = getattr(txn, "__name__", "query")
        started = time.perf_counter()
        d: Deferred[Any] = self._engine.run(txn, *args)

        def done(result: Any) -> Any:
            failed = isinstance(result, Failure) and (
                result.check(Unavailable) is not None or result.check(ChatireError) is None)
            self._metrics.query_done(name, time.perf_counter() - started, failed)
            return result

        d.addBoth(done)
        return d
