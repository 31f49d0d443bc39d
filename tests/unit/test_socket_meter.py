"""Sockets report to a meter through the factory: no metered subclass reads their state."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport

from chatire.config import Config
from chatire.ws import CLOSE_SLOW_READER, ChatSocket, ChatSocketFactory


class Meter:
    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.slow = 0

    def frame_delivered(self, frame: Any) -> None:
        self.frames.append(frame)

    def slow_reader_closed(self) -> None:
        self.slow += 1


class Frame:
    payloadHybi = b"\x81\x02hi"
    payload = b"hi"


class Hub:
    def connection_closed(self, socket: Any) -> None:
        pass


def _socket(meter: Meter | None) -> ChatSocket:
    factory = ChatSocketFactory(None, Hub(), Config(), None, meter=meter)  # type: ignore[arg-type]
    socket = factory.buildProtocol(None)
    assert isinstance(socket, ChatSocket)
    socket.makeConnection(StringTransport())
    socket.state = socket.STATE_OPEN  # as after the opening handshake
    socket.transport.clear()  # type: ignore[attr-defined]
    return socket


def test_a_socket_counts_frames_and_slow_reader_closes_into_its_factorys_meter() -> None:
    meter = Meter()
    socket = _socket(meter)
    frame = Frame()
    socket.deliver(frame)
    socket.deliver(frame)
    assert meter.frames == [frame, frame]
    assert socket.transport.value() == Frame.payloadHybi * 2  # type: ignore[attr-defined]
    socket.close(CLOSE_SLOW_READER, "slow")
    socket.close(CLOSE_SLOW_READER, "slow")  # closing already: counted once
    socket.deliver(frame)  # gone: neither sent nor counted
    assert meter.slow == 1 and meter.frames == [frame, frame]


def test_without_a_meter_nothing_is_counted() -> None:
    socket = _socket(None)
    socket.deliver(Frame())
    assert socket.transport.value() == Frame.payloadHybi  # type: ignore[attr-defined]
