"""A blocking, minimal WebSocket client on a plain socket: frames as raw as a fuzzer wants."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from typing import Any

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def frame(payload: bytes, opcode: int = TEXT, fin: bool = True, rsv: int = 0) -> bytes:
    """The bytes of one client frame (masked, as a client must)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def upgrade_request(host: str, port: int, token: str | None = None) -> bytes:
    """The bytes of a WebSocket upgrade request to ``/ws``, with a header token or none."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /ws HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Closed(Exception):
    """The server closed the connection; ``code`` is its close code (None: no close frame)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed {code}")
        self.code = code


class RawSocket:
    """One client connection: handshake, masked frames out, frames in (blocking, with timeouts)."""

    def __init__(self, host: str, port: int, token: str | None = None,
                 timeout: float = 5.0, then: bytes = b"") -> None:
        """Open and upgrade; ``then`` is written right behind the request, in one go."""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.sendall(upgrade_request(host, port, token) + then)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Closed(None)
            head += chunk
        status, _, self._buffer = head.partition(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n", 1)[0]:
            raise ConnectionError(status.split(b"\r\n", 1)[0].decode(errors="replace"))
        self.close_code: int | None = None

    def send_frame(self, payload: bytes, opcode: int = TEXT, fin: bool = True,
                   rsv: int = 0) -> None:
        """One frame, masked as a client must."""
        try:
            self.sock.sendall(frame(payload, opcode, fin, rsv))
        except OSError:
            raise Closed(self.close_code) from None

    def send_json(self, body: Any) -> None:
        self.send_frame(json.dumps(body).encode())

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                raise Closed(self.close_code)
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def next_frame(self) -> tuple[int, bytes]:
        """The next data frame (pings answered); Closed on a close frame or EOF."""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            if opcode == CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(self.close_code)
            if opcode == PING:
                self.send_frame(payload, PONG)
                continue
            return opcode, payload

    def next_json(self) -> Any:
        opcode, payload = self.next_frame()
        assert opcode == TEXT, opcode
        return json.loads(payload)

    def close(self) -> None:
        try:
            self.send_frame(struct.pack("!H", 1000), CLOSE)
        except Closed:
            pass
        self.sock.close()


def reply_to(ws: RawSocket, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a frame and read its one reply (AssertionError if none comes in time)."""
    ws.send_json(frame)
    try:
        reply: dict[str, Any] = ws.next_json()
    except TimeoutError:
        raise AssertionError(f"no reply to {frame!r}") from None
    return reply


def still_open(ws: RawSocket) -> None:
    """The socket still answers, and nothing but that answer was waiting in it."""
    marker = "still-open-" + os.urandom(4).hex()
    reply = reply_to(ws, {"type": "unsubscribe", "chat": marker})
    assert reply.get("chat") == marker, reply  # unsubscribed, or unauthenticated before auth
    assert reply["type"] == "unsubscribed" or reply["code"] == "unauthenticated", reply
