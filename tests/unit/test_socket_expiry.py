"""A socket closes 4001 at its token's expiry, on the reactor clock (a Clock here)."""

from __future__ import annotations

import base64
import struct

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chatire.bus.memory import MemoryBroker
from chatire.config import Config
from chatire.ws import ChatSocketFactory
from tests.unit.harness import Node, run


def _handshake(token: str) -> bytes:
    key = base64.b64encode(b"0123456789abcdef").decode()
    return (f"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode()


def _close_frame(code: int) -> bytes:
    return b"\x88" + bytes([2 + len(b"token expired")]) + struct.pack("!H", code)


def test_the_socket_closes_4001_when_the_token_expires() -> None:
    clock = Clock()
    clock.advance(1_000_000)
    node = Node(clock, MemoryBroker())
    node.chats.config = Config(token_lifetime=60)
    node.user("alice")
    token, _ = run(node.chats.sign_in("alice", "correct horse", "192.0.2.1"))
    clock.advance(20)  # the token has 40 s left when the socket opens
    factory = ChatSocketFactory(node.chats, node.hub,
                                Config(ping_interval=0, token_lifetime=60), clock)
    socket = factory.buildProtocol(None)
    transport = StringTransport()
    socket.makeConnection(transport)
    socket.dataReceived(_handshake(token))
    assert b"101 Switching Protocols" in transport.value()
    assert b'"type":"ready"' in transport.value()
    transport.clear()
    clock.advance(39.9)
    assert transport.value() == b""
    clock.advance(0.2)
    assert transport.value().startswith(_close_frame(4001))
    assert node.hub.connections() == []
