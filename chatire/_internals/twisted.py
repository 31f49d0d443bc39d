"""Twisted's private names chatire relies on: a TCP transport's buffer, a port's logger."""

from __future__ import annotations

import fcntl
import inspect
import sys
import termios
from typing import Any

from twisted.internet import abstract, tcp

from chatire._internals import check, has

#: The accept events of Twisted's tcp.Port that come once per refused connection
#: (its log formats: matched by text, as Twisted gives them no other name).
REFUSALS = ("EMFILE encountered", "EMFILE recovery", "Re-reserving EMFILE",
            "Could not accept new connection")

#: What the fast paths read of a tcp.Server, and what quiet ports replace.
NAMES = {
    "FileDescriptor.dataBuffer": has(abstract.FileDescriptor, "dataBuffer"),
    "FileDescriptor.offset": has(abstract.FileDescriptor, "offset"),
    "FileDescriptor._tempDataLen": has(abstract.FileDescriptor, "_tempDataLen",
                                       abstract.FileDescriptor),
    "FileDescriptor._writeDisconnected": has(abstract.FileDescriptor, "_writeDisconnected"),
    "Connection.TLS": has(tcp.Connection, "TLS"),
    "Connection.socket": has(tcp.Connection, "socket", tcp.Connection),
}
FAST = check("twisted", NAMES)

PORT_NAMES = {
    "Port._logger": has(tcp.Port, "_logger"),
    **{f"log text {text!r}": text in inspect.getsource(tcp) for text in REFUSALS},
}
PORT_LOGGER = check("twisted", PORT_NAMES)


def _plain(transport: Any) -> bool:
    return FAST and type(transport) is tcp.Server and not transport.TLS


def unsent_bytes(transport: Any) -> int | None:
    """Bytes a plain TCP transport still holds for its peer, in Twisted's buffer and in
    the kernel's send queue (not yet acknowledged by the peer); None if it cannot say."""
    if not _plain(transport):
        return None
    held = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    try:
        queued = fcntl.ioctl(transport.socket.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return None
    return held + int.from_bytes(queued, sys.byteorder, signed=True)


def write_now(transport: Any, data: bytes) -> None:
    """Write to a plain TCP transport at once when nothing waits in its buffer.

    Twisted's write buffers the bytes and registers the socket with the poller;
    the next reactor turn sends them and unregisters it: three system calls and
    two passes through the reactor per frame, for every subscriber of a fanout.
    With an empty buffer the order cannot change, so one ``send`` does it;
    whatever the kernel does not take (or any error) goes the usual way.
    """
    if (not FAST or type(transport) is not tcp.Server or transport.TLS
            or not transport.connected or transport._writeDisconnected
            or transport._tempDataLen or transport.offset != len(transport.dataBuffer)):
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        transport.write(data)  # Twisted's doWrite meets the error and closes properly
        return
    if sent < len(data):
        transport.write(data[sent:])


def port_logger(port: object) -> Any:
    """A listening tcp.Port's own Logger, or None where it cannot be replaced."""
    if not PORT_LOGGER or not isinstance(port, tcp.Port):
        return None
    return port._logger


def set_port_logger(port: object, logger: Any) -> None:
    """Give a listening tcp.Port (one port_logger answered for) another Logger."""
    port._logger = logger  # type: ignore[attr-defined]
