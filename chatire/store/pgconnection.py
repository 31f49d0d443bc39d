"""A txpostgres connection that tries each host within a deadline and survives its socket."""

from __future__ import annotations

from typing import Any

import psycopg2
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from chatire._internals.txpostgres import Connection
from chatire.store.pgtargets import Target, targets

log = Logger()

#: What a connection's socket going away raises from the reactor's doRead/doWrite:
#: psycopg2's errors, and ValueError/OSError when libpq has already closed the socket
#: (a failed connect leaves fileno() at -1, which the reactor cannot watch).
_SOCKET_ERRORS = (psycopg2.Error, ValueError, OSError)


class DeadlineConnection(Connection):
    """Connects host by host, each within ``deadline`` seconds (0: no deadline).

    libpq ignores ``connect_timeout`` on an asynchronous connect: a host that takes
    the TCP connection and never answers would hold the connect forever, at start
    and on every reconnect, and the next host of a list would never be tried. Here
    an attempt past its deadline is abandoned (its socket unwatched, then closed)
    and the next host is tried; when none answered, the connect fails with each
    host's reason, and the reconnection detector retries with its backoff.

    Nothing raised while the reactor reads or writes the socket reaches the
    reactor (it would log an "Unhandled Error" with a traceback): a lost socket is
    logged as one line, closed, and reported to the detector, which reconnects.
    """

    #: Whether a connect is under way (its failures are its own, not a lost connection).
    connecting = False
    _abandoned = False
    _cancelled = False
    _stopped = False

    def __init__(self, reactor: Any, cooperator: Any, *, detector: Any,
                 deadline: float) -> None:
        super().__init__(reactor, cooperator, detector=detector)
        self.deadline = deadline

    def connect(self, dsn: str) -> Deferred[DeadlineConnection]:
        """Connect to the first of ``dsn``'s hosts that answers in time."""
        self._stopped = False
        return Deferred.fromCoroutine(self._connect(dsn))

    async def _connect(self, dsn: str) -> DeadlineConnection:
        reasons: list[str] = []
        hosts = targets(dsn)
        self.connecting = True
        try:
            for i, target in enumerate(hosts):
                try:
                    await self._attempt(target, dsn)
                except CancelledError:
                    raise
                except Exception as e:
                    reasons.append(_first_line(e))
                    if self._stopped:
                        break
                    if i + 1 < len(hosts):
                        log.warn("PostgreSQL: {reason}; trying the next host",
                                 reason=reasons[-1])
                    continue
                if i:
                    log.info("PostgreSQL: connected to {host}", host=target.name)
                return self
        finally:
            self.connecting = False
        reason = "; ".join(reasons)
        if not self._stopped and self.detector is not None and self.detector.connectionIsDead:
            log.warn("PostgreSQL: cannot reconnect ({reason}); retrying", reason=reason)
        raise psycopg2.OperationalError(reason)

    async def _attempt(self, target: Target, dsn: str) -> None:
        """One host: connected, or failed with its reason (a timeout past the deadline)."""
        self._abandoned = self._cancelled = False
        d = super().connect(target.dsn)
        if self.detector is not None:  # it reconnects to the whole list, not this host
            self.detector.setReconnectable(self, dsn)
        timer: IDelayedCall | None = None
        if self.deadline > 0:
            timer = self.reactor.callLater(self.deadline, self._abandon)
        # Cancelled (a caller's own timeout), the attempt is abandoned the same way:
        # txpostgres' canceller would send a cancel request on a connection not yet up.
        waiting: Deferred[Any] = Deferred(self._cancel)
        d.chainDeferred(waiting)  # after a cancel, its late result is dropped
        try:
            await waiting
        except Exception:
            self._shut()  # no socket of a failed attempt stays open or watched
            if self._cancelled:
                raise CancelledError() from None
            if self._abandoned:
                raise psycopg2.OperationalError(
                    f"connection to server at {target.name}: no answer within "
                    f"{self.deadline:g} s") from None
            raise
        finally:
            if timer is not None and timer.active():
                timer.cancel()

    def _cancel(self, _: Deferred[Any]) -> None:
        """The caller cancelled the connect: close the attempt, try no other host."""
        self._cancelled = self._stopped = True
        self._shut()

    def _abandon(self) -> None:
        """The deadline passed: unwatch and close the socket, failing the attempt."""
        self._abandoned = True
        self._shut()

    def _shut(self) -> None:
        """txpostgres' close (unwatch the socket, close it, fail whatever waits on it)."""
        connection = self.pollable()
        if connection is not None and not connection.closed:
            super().close()

    def close(self) -> None:
        """Close the connection; a connect under way stops (no further host is tried)."""
        if self.connecting:
            self._stopped = True
        if self.pollable() is not None:
            super().close()

    def doRead(self) -> Any:
        try:
            super().doRead()
        except _SOCKET_ERRORS as e:
            return self._lost(e)
        return None

    def doWrite(self) -> Any:
        try:
            super().doWrite()
        except _SOCKET_ERRORS as e:
            return self._lost(e)
        return None

    def _lost(self, error: Exception) -> Exception | None:
        """The socket went away under the reactor: close it; the detector reconnects.

        Returned, the error makes the reactor call connectionLost with it, which
        tells the detector the connection is dead. A connect under way fails by
        itself (its poll already reported why), so nothing is returned then.
        """
        reason = _first_line(error)
        self._shut()
        if self.connecting:
            return None
        log.warn("PostgreSQL connection lost: {error}", error=reason)
        if isinstance(error, psycopg2.Error):
            return error
        return psycopg2.OperationalError(reason)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__
