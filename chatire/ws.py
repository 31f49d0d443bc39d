"""WebSocket transport: Autobahn protocol and factory; frames in, Hub and ChatService calls out."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.protocol import PreparedMessage
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ISSLTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatire import jsonin
from chatire._internals import autobahn
from chatire.auth import token_hash
from chatire.backpressure import CLOSE_SLOW_READER, Backpressure
from chatire.chats import ChatService
from chatire.config import Config
from chatire.delivery import Hub
from chatire.errors import ChatireError, Invalid, RateLimited, Unauthenticated
from chatire.jsonin import encode
from chatire.model import User
from chatire.schemas import FRAMES, validate
from chatire.text import Text, problem
from chatire.timeline import TimelineService

log = Logger()

#: Frames of one socket that may wait to be handled before new ones are refused.
MAX_QUEUED_FRAMES = 64

CLOSE_UNAUTHENTICATED = 4001
#: A first-frame authentication past --max-sockets-per-user (a header one gets 429).
CLOSE_TOO_MANY_SOCKETS = 4029
CLOSE_GOING_AWAY = 1001


class SocketMeter(Protocol):
    """What sockets report to a meter (chatire.metrics.Metrics): frames handed over, 4008s."""

    def frame_delivered(self, frame: Any) -> None: ...

    def slow_reader_closed(self) -> None: ...


class ChatSocket(Backpressure):
    """One client's socket: authenticates, then turns frames into Hub and ChatService calls."""

    factory: ChatSocketFactory

    def __init__(self) -> None:
        super().__init__()
        self.user: User | None = None
        self.token_hash: str | None = None
        self._header_token: str | None = None
        self._header_auth: tuple[User, datetime] | ChatireError | None = None
        self._auth_timer: IDelayedCall | None = None
        self._expiry_timer: IDelayedCall | None = None
        self._counted: int | None = None  # the user id this socket counts for
        self._lost = False
        self._opened = False
        self._gone = False
        self._queued = 0
        self._tail: Deferred[None] = Deferred()
        self._tail.callback(None)

    # -- handshake ------------------------------------------------------------------

    # Autobahn takes a Deferred from onConnect too (txaio.as_future).
    def onConnect(  # type: ignore[override]
            self, request: ConnectionRequest) -> Deferred[None] | None:
        factory = self.factory
        if factory.open_count >= factory.config.max_connections:
            raise ConnectionDeny(ConnectionDeny.SERVICE_UNAVAILABLE, "too many connections")
        origin = request.headers.get("origin")
        if origin is not None and not factory.origin_allowed(
                origin, request.headers.get("host", ""), self._secure(request)):
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "origin not allowed")
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                self._header_token = token.strip()
                # Known before the upgrade, so one user past its socket cap gets 429.
                return Deferred.fromCoroutine(self._check_header_token(self._header_token))
            self._header_token = ""
        return None

    async def _check_header_token(self, token: str) -> None:
        try:
            self._header_auth = await self.factory.chats.session(token)
        except Unauthenticated as e:
            self._header_auth = e  # refused once open, as a first-frame token would be
            return
        except ChatireError as e:
            raise ConnectionDeny(e.status, e.message) from None
        if self._lost:
            return  # gone while the store answered: nothing to count
        if not self._take_slot(self._header_auth[0]):
            raise ConnectionDeny(429, "too many open sockets for this user")

    def _take_slot(self, user: User) -> bool:
        """Count this socket for its user; False past --max-sockets-per-user."""
        if self._counted is not None:
            return True
        counts, cap = self.factory.user_sockets, self.factory.config.max_sockets_per_user
        if cap and counts.get(user.id, 0) >= cap:
            return False
        counts[user.id] = counts.get(user.id, 0) + 1
        self._counted = user.id
        return True

    def _release_slot(self) -> None:
        user_id, self._counted = self._counted, None
        if user_id is not None:
            counts = self.factory.user_sockets
            counts[user_id] -= 1
            if not counts[user_id]:
                del counts[user_id]

    def _secure(self, request: ConnectionRequest) -> bool:
        forwarded = request.headers.get("x-forwarded-proto", "")
        return ISSLTransport.providedBy(self.transport) or forwarded.lower() == "https"

    def onOpen(self) -> None:
        self._opened = True
        self.factory.open_count += 1
        self.factory.hub.connection_opened(self)
        self._watch_backlog()
        if isinstance(self._header_auth, ChatireError):
            self._refuse(self._header_auth, {})
            self.close(CLOSE_UNAUTHENTICATED, "bad token")
        elif self._header_auth is not None:
            self._authenticated(*self._header_auth, self._header_token or "")
        elif self._header_token is not None:
            self._enqueue(self._authenticate(self._header_token))
        else:
            self._auth_timer = self.factory.clock.callLater(
                self.factory.config.auth_timeout, self._auth_timed_out)

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.user is None:
            self.close(CLOSE_UNAUTHENTICATED, "not authenticated in time")

    # -- frames in --------------------------------------------------------------------

    dataReceived = autobahn.data_received  # skips a per-read debug line's formatting

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self._refuse(Invalid("text frames only"), {})
            return
        try:
            frame = jsonin.loads(payload)
        except Invalid as e:
            self._refuse(Invalid(f"a frame must be one JSON object: {e.message}"), {})
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            self._refuse(Invalid('a frame must be a JSON object with a "type"'), {})
            return
        kind = frame["type"]
        if kind not in FRAMES:
            self._refuse(Invalid(f"unknown frame type {kind[:40]!r}"), frame)
            return
        if self._queued >= MAX_QUEUED_FRAMES:
            self._refuse(RateLimited("too many frames waiting; slow down"), frame)
            return
        handler = getattr(self, f"_on_{kind}")
        self._enqueue(self._handle(handler, frame))

    def _enqueue(self, work: Coroutine[Any, Any, None]) -> None:
        """Handle this socket's frames one after another, in arrival order."""
        self._queued += 1

        def run(_: object) -> Deferred[None] | None:
            if self._gone:  # closed meanwhile: no work runs for a closed socket
                work.close()
                return None
            return Deferred.fromCoroutine(work)

        def done(result: object) -> None:
            self._queued -= 1
            if isinstance(result, Failure):
                log.failure("error handling a frame", result)

        self._tail.addCallback(run)
        self._tail.addBoth(done)

    async def _handle(self, handler: Callable[[dict[str, Any]], Coroutine[Any, Any, None]],
                      frame: dict[str, Any]) -> None:
        try:
            validate(f"frame:{frame['type']}", frame)
            if self.user is None and frame["type"] != "auth":
                raise Unauthenticated("authenticate first")
            await handler(frame)
        except ChatireError as e:
            self._refuse(e, frame)

    def _refuse(self, error: ChatireError, frame: dict[str, Any]) -> None:
        body: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message}
        for key in ("chat", "client_id"):
            value = frame.get(key)
            if isinstance(value, str) and problem(value, Text.PLAIN) is None:
                body[key] = value  # never echo what breaks the text rules
        self.send_json(body)

    async def _on_auth(self, frame: dict[str, Any]) -> None:
        if self.user is not None:
            raise Invalid("already authenticated")
        await self._authenticate(frame["token"])

    async def _authenticate(self, token: str) -> None:
        try:
            user, expires_at = await self.factory.chats.session(token)
        except (Unauthenticated, Invalid) as e:  # Invalid: a header token of bad characters
            self._refuse(e, {})
            self.close(CLOSE_UNAUTHENTICATED, "bad token")
            return
        if self._gone:
            return
        if not self._take_slot(user):
            self._refuse(RateLimited("too many open sockets for this user"), {})
            self.close(CLOSE_TOO_MANY_SOCKETS, "too many open sockets for this user")
            return
        self._authenticated(user, expires_at, token)

    def _authenticated(self, user: User, expires_at: datetime, token: str) -> None:
        if self._auth_timer is not None and self._auth_timer.active():
            self._auth_timer.cancel()
        self._auth_timer = None
        self.user, self.token_hash = user, token_hash(token)
        # The token's expiry ends the socket too (PROTOCOL.md: Abuse limits).
        left = (expires_at - self.factory.chats.now()).total_seconds()
        self._expiry_timer = self.factory.clock.callLater(max(0.0, left), self._token_expired)
        self.send_json({"type": "ready", "user": user.to_json()})

    def _token_expired(self) -> None:
        self._expiry_timer = None
        self.close(CLOSE_UNAUTHENTICATED, "token expired")

    async def _on_subscribe(self, frame: dict[str, Any]) -> None:
        assert self.user is not None
        await self.factory.hub.subscribe(self, self.user, frame["chat"], frame.get("after"),
                                         self.factory.chats.member_chat)

    async def _on_unsubscribe(self, frame: dict[str, Any]) -> None:
        self.factory.hub.unsubscribe(self, frame["chat"])
        self.send_json({"type": "unsubscribed", "chat": frame["chat"]})

    async def _on_typing(self, frame: dict[str, Any]) -> None:
        assert self.user is not None
        self.factory.hub.typing(self, self.user, frame["chat"])

    async def _on_send(self, frame: dict[str, Any]) -> None:
        assert self.user is not None
        committed = await self.factory.chats.submit(
            self.user, frame["chat"], frame["message"], frame.get("client_id"),
            frame.get("reply_to"))
        committed.addCallbacks(self._sent, self._send_failed, errbackArgs=(frame,))

    async def _on_read(self, frame: dict[str, Any]) -> None:
        assert self.user is not None
        # Subscribed: membership was checked at the subscribe, and a leave or a removal ends
        # the subscription; the write itself touches members' rows only. No store read a mark.
        known = self.factory.hub.marked(self, frame["chat"], frame["seq"])
        await self.factory.timeline.mark_read(self.user, frame["chat"], frame["seq"], self,
                                              known=known)

    def _sent(self, result: Any) -> None:
        message, _ = result
        self.send_json({"type": "sent", "chat": message.chat, "client_id": message.client_id,
                        "seq": message.seq, "id": message.id})

    def _send_failed(self, failure: Failure, frame: dict[str, Any]) -> None:
        if isinstance(failure.value, ChatireError):
            self._refuse(failure.value, frame)
        else:
            log.failure("storing a message failed", failure)
            self._refuse(ChatireError("the message could not be stored"), frame)

    # -- frames out (the Hub's Subscriber) ----------------------------------------------

    def deliver(self, frame: Any) -> None:
        if self._gone:
            return
        autobahn.send_prepared(self, frame)
        meter = self.factory.meter
        if meter is not None:
            meter.frame_delivered(frame)
        self._count_held(frame)

    def send_json(self, body: dict[str, Any]) -> None:
        if not self._gone and self.state == self.STATE_OPEN:
            self.send_frame(prepare(encode(body)))

    def send_frame(self, frame: Any) -> None:
        # Not once the close handshake began (Autobahn raises): a reply finishing
        # late (an auth, a commit) after the peer or a protocol error closed it.
        if not self._gone and self.state == self.STATE_OPEN:
            # As deliver(): framed once, no per-call debug formatting in sendData.
            autobahn.send_prepared(self, frame)

    def close(self, code: int, reason: str) -> None:
        if self._gone:
            return
        self._gone = True
        if code == CLOSE_SLOW_READER and self.factory.meter is not None:
            self.factory.meter.slow_reader_closed()
        self.factory.hub.connection_closed(self)
        if code == CLOSE_SLOW_READER:
            self._let_slow_reader_drain()
        # sendClose refuses 1001 (going away), which PROTOCOL.md uses at shutdown.
        self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123], isReply=False)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self._stop_stall_watch()
        super().connectionLost(reason)
        self._release_slot()  # onClose did, unless the handshake never finished
        # Autobahn resolves is_closed with the protocol itself: a cycle that only a
        # full collection frees, and the daemon runs those rarely (chatire.collector).
        # Nothing here awaits these, so a closed socket goes by reference counting.
        self.is_closed = self.is_open = None

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._gone = True
        self._release_slot()
        for timer in (self._auth_timer, self._expiry_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._auth_timer = self._expiry_timer = None
        if self._opened:
            self._opened = False
            self.factory.open_count -= 1
            self.factory.hub.connection_closed(self)


def prepare(payload: bytes) -> PreparedMessage:
    """A message frame, framed once for every socket that gets it (as the factory's
    prepareMessage does: a server's frames are never masked)."""
    return PreparedMessage(payload, False, False, False)


class ChatSocketFactory(WebSocketServerFactory):
    """Builds ChatSockets with PROTOCOL.md's limits; owns the count of open sockets."""

    protocol = ChatSocket  # type: ignore[assignment]

    def __init__(self, chats: ChatService, hub: Hub, config: Config, clock: IReactorTime,
                 *, protocol: type[ChatSocket] = ChatSocket,
                 meter: SocketMeter | None = None,
                 timeline: TimelineService | None = None) -> None:
        super().__init__(server="chatire")
        self.protocol = protocol
        self.meter = meter
        self.chats = chats
        self._timeline = timeline
        self.hub = hub
        self.config = config
        self.clock = clock
        self.open_count = 0
        self.user_sockets: dict[int, int] = {}  # open sockets a user id, for the cap
        self.setProtocolOptions(
            maxFramePayloadSize=config.max_frame_bytes,
            maxMessagePayloadSize=config.max_frame_bytes,
            autoPingInterval=config.ping_interval,
            autoPingTimeout=config.ping_timeout,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=2,
            failByDrop=False,
            # Let Origin: null reach onConnect, which refuses it with 403 (PROTOCOL.md);
            # setProtocolOptions resets this to False (400) on every call.
            allowNullOrigin=True,
        )

    @property
    def timeline(self) -> TimelineService:
        """The timeline rules (a factory built without them, in tests, makes its own)."""
        if self._timeline is None:
            self._timeline = TimelineService(self.chats, self.chats.store, self.clock)
        return self._timeline

    def origin_allowed(self, origin: str, host: str, secure: bool) -> bool:
        if origin == "null":
            return False
        own = ("https://" if secure else "http://") + host
        allowed = {a.rstrip("/").lower() for a in self.config.allowed_origin}
        return origin.rstrip("/").lower() in allowed | {own.lower()}

    def close_all(self, code: int, reason: str) -> None:
        for conn in self.hub.connections():
            conn.close(code, reason)
