"""The library internals chatire reaches into: pinned on the installed versions, with fallbacks."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import requires, version
from typing import Any

import pytest
import pytest_twisted
from packaging.requirements import Requirement
from twisted.internet import defer, reactor, tcp
from twisted.logger import LogLevel, globalLogPublisher

from chatire import logs
from chatire._internals import autobahn as ab
from chatire._internals import check, has
from chatire._internals import pika as pk
from chatire._internals import twisted as tw
from chatire._internals import txpostgres as tp
from chatire.store import postgres, store_from_url
from chatire.ws import ChatSocket
from tests.support.services import fresh_database


@pytest.mark.parametrize("names", [tw.NAMES, tw.PORT_NAMES, ab.NAMES, pk.NAMES, tp.NAMES],
                         ids=["twisted", "twisted-port", "autobahn", "pika", "txpostgres"])
def test_every_private_name_exists_on_the_installed_version(names: dict[str, bool]) -> None:
    assert names and all(names.values()), names


def test_the_fast_paths_are_on() -> None:
    assert tw.FAST and tw.PORT_LOGGER and ab.FAST and pk.FAST and tp.OWN_TRANSACTIONS
    assert ChatSocket.dataReceived is ab.data_received
    assert ab.data_received.__name__ == "_dataReceived"


def test_a_missing_name_is_found_missing_and_logged_once() -> None:
    class Plain:
        def __init__(self) -> None:
            self.kept = 1

    assert has(Plain, "kept", Plain)  # set on instances, found in the source
    assert not has(Plain, "_gone", Plain)
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        assert check("lib", {"Plain.kept": True}) is True
        assert check("lib", {"Plain._gone": False, "Plain.kept": True}) is False
    finally:
        globalLogPublisher.removeObserver(events.append)
    warned = [e for e in events if e.get("log_level") == LogLevel.warn]
    assert len(warned) == 1 and warned[0]["missing"] == "Plain._gone"


class _Sock:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)


def _idle_server() -> Any:
    """A tcp.Server with an empty buffer, as the fast path sees it (no real socket)."""
    server: Any = object.__new__(tcp.Server)
    server.socket, server.connected, server.written = _Sock(), 1, []
    server._tempDataLen = 0
    server.write = server.written.append
    return server


def test_write_now_sends_directly_or_through_the_public_write(
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = _idle_server()
    tw.write_now(server, b"fast")
    assert server.socket.sent == [b"fast"] and server.written == []
    monkeypatch.setattr(tw, "FAST", False)
    tw.write_now(server, b"slow")
    assert server.socket.sent == [b"fast"] and server.written == [b"slow"]
    assert tw.unsent_bytes(server) is None  # cannot say: the stall watch stays off


def test_send_prepared_falls_back_to_autobahn(monkeypatch: pytest.MonkeyPatch) -> None:
    class Frame:
        payloadHybi = b"\x81\x02hi"

    class Socket:
        STATE_OPEN = 3
        state = 3
        _perMessageCompress = None
        send_queue: list[bytes] = []

        def __init__(self) -> None:
            self.transport = _idle_server()
            self.prepared: list[Any] = []

        def sendPreparedMessage(self, frame: Any) -> None:
            self.prepared.append(frame)

    socket = Socket()
    ab.send_prepared(socket, Frame())
    assert socket.transport.socket.sent == [Frame.payloadHybi] and socket.prepared == []
    monkeypatch.setattr(ab, "FAST", False)
    ab.send_prepared(socket, Frame())
    assert len(socket.prepared) == 1


def test_pika_fallbacks_use_the_public_channel() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    class PublicOnly:  # a TwistedChannel without its private _channel
        def exchange_declare(self, **kw: Any) -> defer.Deferred[None]:
            calls.append(("exchange_declare", kw))
            return defer.fail(RuntimeError("channel closed"))  # errors are ignored

        def queue_bind(self, **kw: Any) -> defer.Deferred[None]:
            calls.append(("queue_bind", kw))
            return defer.succeed(None)

    pk.declare_nowait(PublicOnly(), "chat.x")  # type: ignore[arg-type]
    pk.bind_nowait(PublicOnly(), "q", "chat.x")  # type: ignore[arg-type]
    assert calls == [("exchange_declare", {"exchange": "chat.x", "exchange_type": "fanout",
                                           "durable": True}),
                     ("queue_bind", {"queue": "q", "exchange": "chat.x"})]
    assert pk.pending_error(object()) is None  # type: ignore[arg-type]


def test_an_unknown_port_keeps_its_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    port: Any = object.__new__(tcp.Port)
    port._logger = before = object()
    monkeypatch.setattr(tw, "PORT_LOGGER", False)
    logs.quiet_accept_errors(port, reactor)
    assert port._logger is before


@pytest.mark.postgres
@pytest_twisted.ensureDeferred
async def test_postgres_runs_through_txpostgres_public_transactions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(tp.Connection, "_runInteraction")
    monkeypatch.setattr(postgres, "OWN_TRANSACTIONS", False)
    with fresh_database() as url:
        store = store_from_url(url, reactor)
        await store.start()
        try:
            user = await store.create_user("fallback", "x", "Fallback", datetime.now(UTC))
            assert (await store.find_user("fallback")) == user
        finally:
            await store.stop()


def test_each_dependency_is_capped_at_a_version_the_suite_ran_on() -> None:
    runtime = [Requirement(r) for r in requires("chatire") or [] if "extra ==" not in r]
    assert runtime
    for req in runtime:
        assert any(s.operator in ("<", "<=") for s in req.specifier), f"{req} has no cap"
        assert req.specifier.contains(version(req.name)), f"{req.name} {version(req.name)}"
