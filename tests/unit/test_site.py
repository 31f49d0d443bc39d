"""The whole-request deadline (--request-timeout) of the HTTP channel, on a Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource
from twisted.web.server import Request

from chatire.logs import AccessLogSite
from chatire.site import make_site


class Hello(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        return b"hello"


def connect(clock: Clock, request_timeout: float = 30.0,
            idle: float | None = None) -> tuple[Any, StringTransport]:
    site = make_site(Hello(), 1024, site_class=AccessLogSite, reactor=clock,
                     request_timeout=request_timeout, timeout=idle)
    channel = site.buildProtocol(IPv4Address("TCP", "192.0.2.7", 4321))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 4321))
    channel.makeConnection(transport)
    return channel, transport


def trickle(channel: Any, clock: Clock, data: bytes, every: float = 1.0) -> None:
    for byte in data:
        channel.dataReceived(bytes([byte]))
        clock.advance(every)


def test_headers_trickled_one_byte_a_second_are_cut_at_the_deadline() -> None:
    clock = Clock()
    channel, transport = connect(clock, request_timeout=30, idle=5)
    trickle(channel, clock, b"GET / HTTP/1.1\r\nX-A: " + b"a" * 8)  # 29 bytes, 29 s
    assert not transport.disconnecting  # the idle timeout (5 s) never fires: bytes keep coming
    channel.dataReceived(b"a")
    clock.advance(1)
    assert transport.disconnected and transport.disconnecting  # aborted, at 30 s
    assert transport.value() == b""


def test_a_body_trickled_past_the_deadline_is_cut_too() -> None:
    clock = Clock()
    channel, transport = connect(clock, request_timeout=10)
    channel.dataReceived(b"POST / HTTP/1.1\r\nContent-Length: 50\r\n\r\n")
    trickle(channel, clock, b"x" * 9)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnected


def test_a_request_in_time_is_answered_and_the_next_one_gets_its_own_deadline() -> None:
    clock = Clock()
    channel, transport = connect(clock, request_timeout=10)
    trickle(channel, clock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", every=0.3)  # 8 s
    assert transport.value().startswith(b"HTTP/1.1 200") and b"hello" in transport.value()
    clock.advance(60)  # between requests only the idle timeout (none here) applies
    assert not transport.disconnecting
    transport.clear()
    trickle(channel, clock, b"GET / HTTP/1.1\r\nHost: x\r\n", every=0.3)  # 7.5 s more
    assert not transport.disconnecting  # its own 10 s, not the first request's
    clock.advance(3)
    assert transport.disconnected and transport.value() == b""


def test_the_deadline_is_gone_with_the_connection_and_zero_turns_it_off() -> None:
    clock = Clock()
    channel, transport = connect(clock, request_timeout=10)
    channel.dataReceived(b"GET / HT")
    channel.connectionLost(Exception("gone"))  # type: ignore[arg-type]
    assert not clock.getDelayedCalls()
    channel, transport = connect(clock, request_timeout=0)
    trickle(channel, clock, b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 20)
    assert not transport.disconnecting and not clock.getDelayedCalls()
