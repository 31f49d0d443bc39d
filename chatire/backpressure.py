"""A socket's flow control: it counts what its paused transport holds and closes a slow reader."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from chatire._internals.twisted import unsent_bytes
from chatire.model import User

if TYPE_CHECKING:
    from chatire.ws import ChatSocketFactory

log = Logger()

CLOSE_SLOW_READER = 4008

#: Seconds between looks at a closing slow reader's unsent bytes.
STALL_CHECK = 0.5
#: How long a closing slow reader may read nothing when pings are off.
STALL_WAIT_DEFAULT = 10.0


class Backpressure(WebSocketServerProtocol):
    """The base of chatire.ws.ChatSocket: the transport's producer, never a buffer without bound.

    Past --slow-reader-bytes handed to a transport that said its buffer is full, the
    reader is closed with 4008 (it resumes with ``after``); one that then reads nothing
    for --ping-timeout is dropped.
    """

    factory: ChatSocketFactory
    user: User | None  # chatire.ws.ChatSocket's, once authenticated

    def __init__(self) -> None:
        super().__init__()
        self._paused = False
        self._backlog = 0
        self._stall_timer: IDelayedCall | None = None

    def close(self, code: int, reason: str) -> None:
        """Close the socket with a close code (chatire.ws.ChatSocket's)."""
        raise NotImplementedError

    def _watch_backlog(self) -> None:
        """Be the transport's producer: it tells us when its buffer is full."""
        transport: Any = self.transport
        if transport is None or not hasattr(transport, "registerProducer"):
            return
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()  # the HTTP channel's, from before the upgrade
        transport.registerProducer(self, True)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._backlog = 0

    def stopProducing(self) -> None:
        self._paused = True

    def _count_held(self, frame: Any) -> None:
        """A frame was handed over: past the limit while paused, close the slow reader."""
        if self._paused:
            self._backlog += len(frame.payload)
            if self._backlog > self.factory.config.slow_reader_bytes:
                log.info("closing a slow reader", user_id=self.user.id if self.user else None)
                self.close(CLOSE_SLOW_READER, "reading too slowly; reconnect and resume")

    def _let_slow_reader_drain(self) -> None:
        """A slow reader is being closed: give its close frame time to get through."""
        if unsent_bytes(self.transport) is not None:
            # The close frame waits behind everything the reader has not read yet, which
            # may take it longer than the close handshake's 2 s: drop the connection only
            # once it has read nothing for --ping-timeout (nothing more is queued for it).
            self.closeHandshakeTimeout = 0
            self._watch_stall(None, 0.0)

    def _watch_stall(self, last: int | None, still: float) -> None:
        """Drop a closing slow reader after --ping-timeout without reading a byte."""
        self._stall_timer = None
        if self.state == self.STATE_CLOSED:
            return
        unsent = unsent_bytes(self.transport)
        if last is not None and unsent is not None and unsent >= last:
            still += STALL_CHECK
            if still >= (self.factory.config.ping_timeout or STALL_WAIT_DEFAULT):
                self.dropConnection(abort=True)
                return
        else:
            still = 0.0
        self._stall_timer = self.factory.clock.callLater(
            STALL_CHECK, self._watch_stall, unsent, still)

    def _stop_stall_watch(self) -> None:
        if self._stall_timer is not None and self._stall_timer.active():
            self._stall_timer.cancel()
        self._stall_timer = None
