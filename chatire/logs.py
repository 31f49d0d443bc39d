"""Logging: JSON lines (--log-format json), an access log that keeps secrets out, quiet accepts."""

from __future__ import annotations

import json
import re
import resource
import signal
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, cast

import attrs
from autobahn.twisted.websocket import WebSocketServerProtocol
from twisted.application.service import IServiceCollection, MultiService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    Logger,
    formatEvent,
    textFileLogObserver,
)
from twisted.python.components import Componentized
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile
from twisted.web.http import Request
from twisted.web.server import Site
from zope.interface import implementer

from chatire._internals.twisted import REFUSALS, port_logger, set_port_logger
from chatire.health import PROBES

_log = Logger()
access_log = Logger(namespace="chatire.access")

#: Event keys never written: the logger's own bookkeeping, and objects that only
#: stand for the emitter.
_INTERNAL = frozenset({"log_logger", "log_source", "log_io", "log_trace", "log_observer",
                       "log_legacy", "log_flattened", "format", "message", "isError",
                       "failure", "why", "time"})

#: Path segments after which a chat uri (the invitation to it) follows.
_CHAT_URI = re.compile(r"(/api/chats/|/c/)([^/?]{6})[^/?]*")
#: Path segments after which an invite code (a secret) follows: never logged at all.
_INVITE_CODE = re.compile(r"(/api/invites/|/i/|/invites/)[^/?]+")
#: Query parameters of the API that carry nothing secret.
_SAFE_QUERY = frozenset({"after", "before", "limit"})


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-able copy of a log field: plain values as they are, anything else as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth < 3 and isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    if depth < 3 and isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    return str(value)[:500]


def event_as_json(event: dict[str, Any]) -> str:
    """One log event as one line of JSON: time, level, namespace, text, then its fields."""
    when = datetime.fromtimestamp(event.get("log_time", 0.0), tz=UTC)
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace", ""),
        "text": formatEvent(event),
    }
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        record["error"] = failure.getErrorMessage()
        record["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if key.startswith("log_") or key in _INTERNAL or key in record:
            continue
        record[key] = _plain(value)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def json_observer(out: IO[str]) -> ILogObserver:
    """An observer writing one JSON object a line to ``out``."""
    return FileLogObserver(out, event_as_json)


@attrs.frozen
class LogDestination:
    """Where twistd's own options send the log: a file (``path``), standard output, or syslog."""

    path: str | None = None  # None: standard output
    syslog: bool = False
    logger: bool = False  # twistd --logger: an observer factory of the operator's


def log_destination(twistd: Mapping[str, Any] | None) -> LogDestination:
    """Read twistd's --logfile, --nodaemon, --syslog and --logger the way twistd reads them."""
    if not twistd:
        return LogDestination()
    if twistd.get("logger"):
        return LogDestination(logger=True)
    if twistd.get("syslog"):
        return LogDestination(syslog=True)
    logfile = twistd.get("logfile")
    if logfile == "-" or (not logfile and twistd.get("nodaemon")):
        return LogDestination()
    return LogDestination(logfile or "twistd.log")


def destination_from_argv(argv: list[str]) -> LogDestination:
    """twistd's log options read again from its command line (for chatire.tac)."""
    from twisted.scripts.twistd import ServerOptions

    options = ServerOptions()
    try:
        options.parseOptions(argv)
    except (SystemExit, Exception):  # not a twistd command line: its defaults
        return LogDestination()
    return log_destination(options)


class RootService(MultiService):
    """The top service of `twistd chatire`: owns the log file, and reopens it on SIGHUP.

    twistd builds the Application after makeService() and, before starting to
    log, asks it for an ILogObserver component; this sets that component when
    chatire writes the log itself: JSON lines (--log-format json) to twistd's
    --logfile or standard output, or twistd's text to a --logfile. Owning the file
    lets SIGHUP reopen it (after logrotate moved it) and SIGUSR1 rotate it as
    twistd does; SIGHUP with no file is logged and otherwise ignored, so it never
    stops the daemon.
    """

    def __init__(self, log_format: str = "text", out: IO[str] | None = None, *,
                 destination: LogDestination | None = None,
                 reactor: Any = None) -> None:
        super().__init__()
        self.log_format = log_format
        self._out = out
        self.destination = destination or LogDestination()
        self.log_file: LogFile | None = None
        self._reactor = reactor  # given: handle SIGHUP and SIGUSR1 (the daemon's own)
        if log_format == "json" and (self.destination.syslog or self.destination.logger):
            raise ValueError("--log-format json: chatire writes the log itself, to twistd's "
                             "--logfile or standard output; drop twistd's "
                             + ("--syslog" if self.destination.syslog else "--logger"))

    def setServiceParent(self, parent: IServiceCollection) -> None:
        if isinstance(parent, Componentized) and parent.getComponent(ILogObserver, None) is None:
            observer = self._observer()
            if observer is not None:
                parent.setComponent(ILogObserver, observer)
        super().setServiceParent(parent)

    def _observer(self) -> ILogObserver | None:
        if self.destination.path is not None:
            # As twistd opens its --logfile: rotated past 1 MB, kept as .1, .2, ...
            self.log_file = LogFile.fromFullPath(self.destination.path)
            out = cast(IO[str], self.log_file)
            if self.log_format == "json":
                return json_observer(out)
            return textFileLogObserver(out)
        if self.log_format == "json":
            return json_observer(self._out or sys.stdout)
        return None  # twistd's own text log to standard output (or syslog, or --logger)

    def startService(self) -> None:
        if self._reactor is not None:
            reactor = self._reactor
            signal.signal(signal.SIGHUP,
                          lambda *_: reactor.callFromThread(self.reopen_log))
            if self.log_file is not None:
                signal.signal(signal.SIGUSR1,
                              lambda *_: reactor.callFromThread(self.rotate_log))
        super().startService()

    def reopen_log(self) -> None:
        """SIGHUP: reopen the log file (moved away by logrotate); the daemon keeps running."""
        if self.log_file is None:
            _log.info("SIGHUP: logging to standard output, no file to reopen; still running")
            return
        self.log_file.reopen()
        _log.info("SIGHUP: reopened the log file {path}", path=self.log_file.path)

    def rotate_log(self) -> None:
        """SIGUSR1: rotate the log file now, as twistd does (the current one becomes .1)."""
        if self.log_file is not None:
            self.log_file.rotate()
            _log.info("SIGUSR1: rotated the log file {path}", path=self.log_file.path)


def redact_path(path: str) -> str:
    """A request path fit for the log: chat uris cut to 6 characters, no secret query."""
    base, _, query = path.partition("?")
    base = _INVITE_CODE.sub(r"\1...", _CHAT_URI.sub(r"\1\2...", base))
    if not query:
        return base
    kept = [part for part in query.split("&") if part.split("=", 1)[0] in _SAFE_QUERY]
    return base + ("?" + "&".join(kept) if kept else "?...")


class AccessLogSite(Site):
    """A Site whose access log is a structured event with no header, token or chat uri in it."""

    noisy = False  # the service logs what it listens on

    def log(self, request: Request) -> None:
        if request.path in PROBES:
            return  # /livez and /healthz: called every few seconds by the monitoring
        address = request.getClientAddress()
        forwarded = request.getHeader(b"x-forwarded-for")
        agent = request.getHeader(b"user-agent")
        access_log.info(
            "{method} {path} {status} {bytes}",
            method=request.method.decode("latin-1"),
            path=redact_path(request.uri.decode("latin-1")),
            status=getattr(request, "code", 0),
            bytes=getattr(request, "sentLength", 0),
            client=getattr(address, "host", None),
            forwarded_for=forwarded.decode("latin-1")[:200] if forwarded else None,
            user_agent=agent.decode("latin-1")[:200] if agent else None,
        )


class AccessLoggedSocket(WebSocketServerProtocol):
    """A WebSocket protocol whose upgrade is in the access log when it closes.

    The upgrade request never finishes as an HTTP request (the socket takes the
    connection over), so the Site never logs it; this logs one line like any
    request's, redacted the same way, with the close code and the socket's
    lifetime at the end.
    """

    _access_status: int | None = None  # 101, or the status of a refused handshake
    _access_started = 0.0

    def connectionMade(self) -> None:
        self._access_started = self.factory.clock.seconds()
        super().connectionMade()

    def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
        self._access_status = code
        super().failHandshake(reason, code, responseHeaders)

    def onOpen(self) -> None:
        self._access_status = 101
        super().onOpen()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        super().onClose(wasClean, code, reason)
        if self.closedByMe and self.localCloseCode:
            code = self.localCloseCode
        headers: dict[str, str] = getattr(self, "http_headers", None) or {}
        uri: str | None = getattr(self, "http_request_uri", None)
        address = self.transport.getPeer() if self.transport is not None else None
        access_log.info(
            "{method} {path} {status} close {close} after {duration}s",
            method="GET", path=redact_path(uri) if uri else None,
            status=self._access_status or 0, close=code,
            duration=round(self.factory.clock.seconds() - self._access_started, 3),
            client=getattr(address, "host", None),
            forwarded_for=headers.get("x-forwarded-for", "")[:200] or None,
            user_agent=headers.get("user-agent", "")[:200] or None,
        )


class QuietSite(Site):
    """A Site that writes no access log (the /metrics listener: scraped every few seconds)."""

    noisy = False

    def log(self, request: Request) -> None:
        pass


@implementer(ILogObserver)
class AcceptErrorLog:
    """A listening port's log: accept failures (EMFILE and kin) at most once an interval.

    Out of descriptors, Twisted's tcp.Port frees a reserved one, accepts and closes
    every waiting client and logs three lines plus one per client: a storm under
    load. This passes other events on, counts those, and says once per interval
    how many connections were refused since the last line.
    """

    def __init__(self, clock: IReactorTime, observer: ILogObserver,
                 interval: float = 10.0) -> None:
        self._clock = clock
        self._observer = observer
        self._interval = interval
        self._last = float("-inf")
        self._refused = 0

    def __call__(self, event: dict[str, Any]) -> None:
        text = str(event.get("log_format") or "")
        if not text.startswith(REFUSALS):
            self._observer(event)
            return
        if text.startswith(("EMFILE recovery", "Could not accept")):
            self._refused += 1
        now = self._clock.seconds()
        if now - self._last < self._interval or not self._refused:
            return
        self._last = now
        count, self._refused = self._refused, 0
        _log.warn("refused {count} connections: out of file descriptors (open-file limit "
                 "{limit}); raise LimitNOFILE or lower --max-connections",
                 count=count, limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def quiet_accept_errors(port: object, clock: IReactorTime, interval: float = 10.0) -> None:
    """Route a listening tcp.Port's accept-failure lines through an AcceptErrorLog."""
    old = port_logger(port)
    if old is not None:
        set_port_logger(port, Logger(namespace=old.namespace,
                                     observer=AcceptErrorLog(clock, old.observer, interval)))
