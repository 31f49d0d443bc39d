"""Autobahn's private names chatire relies on: the raw read entry, compression and send queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket import protocol

from chatire._internals import check, has
from chatire._internals.twisted import write_now

NAMES = {
    "WebSocketAdapterProtocol._dataReceived": has(WebSocketServerProtocol, "_dataReceived"),
    "WebSocketProtocol._perMessageCompress": has(
        protocol.WebSocketProtocol, "_perMessageCompress", protocol.WebSocketProtocol),
    "WebSocketProtocol.send_queue": has(
        protocol.WebSocketProtocol, "send_queue", protocol.WebSocketProtocol),
}
FAST = check("autobahn", NAMES)

#: A socket protocol's dataReceived. Autobahn's Twisted adapter formats a debug line
#: (hltype/hlval, click styling) for every read before passing it on, with debug
#: logging off as well: a fifth of its time per inbound frame. This passes it on directly.
if TYPE_CHECKING:
    def data_received(self: Any, data: bytes) -> None: ...
else:
    data_received = (
        WebSocketServerProtocol._dataReceived if NAMES["WebSocketAdapterProtocol._dataReceived"]
        else WebSocketServerProtocol.dataReceived)


def send_prepared(socket: Any, frame: Any) -> None:
    """Send a prepared message frame on an open socket.

    The frame is framed already; Autobahn's sendData would format a debug line per
    call (a third of the fanout's time): its bytes go to the transport directly
    while nothing is compressed or queued by Autobahn.
    """
    if (FAST and socket.state == socket.STATE_OPEN and socket._perMessageCompress is None
            and not socket.send_queue):
        write_now(socket.transport, frame.payloadHybi)
    else:
        socket.sendPreparedMessage(frame)

