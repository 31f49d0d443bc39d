"""HTTP transport: Klein routes that parse, authenticate, call ChatService and encode."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs
from klein.resource import KleinResource
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound

from chatire import openapi
from chatire.chats import ChatService
from chatire.clientaddr import Network
from chatire.errors import ChatireError, Invalid, NotFound
from chatire.health import LIVE, Readiness
from chatire.limits import public_config
from chatire.model import Event, item_json
from chatire.moderation import Moderation
from chatire.notify.preferences import Preferences
from chatire.presence import Presence
from chatire.ratelimit import whole_seconds
from chatire.routes.base import Routes, bearer_token, respond
from chatire.routes.moderation import ModerationRoutes
from chatire.routes.notifications import NotificationRoutes
from chatire.timeline import TimelineService
from chatire.webfiles import UIFiles

log = Logger()
T = TypeVar("T")


def _int_arg(request: IRequest, name: str) -> int | None:
    values = request.args.get(name.encode())
    if not values:
        return None
    try:
        return int(values[0].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise Invalid(f"{name}: must be a whole number") from None


def _str_arg(request: IRequest, name: str) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return None
    try:
        return str(values[0].decode("ascii"))
    except UnicodeDecodeError:
        raise Invalid(f"{name}: must be ASCII") from None


@attrs.define
class ChatireAPI(ModerationRoutes, NotificationRoutes, Routes):
    """The HTTP API, the UI's static files and the /ws upgrade, on one Klein router.

    Accounts, chats, the timeline and the service's own paths are here; running a chat
    and notifications are route groups of their own (chatire.routes).
    """

    chats: ChatService
    readiness: Readiness
    web_root: FilePath[str]
    websocket: IResource | None = None
    max_body_bytes: int = 65536
    trusted_proxies: tuple[Network, ...] = ()
    ui_files: UIFiles | None = None
    timeline: TimelineService | None = None
    moderation: Moderation | None = None
    presence: Presence | None = None
    notifications: Preferences | None = None
    public_url: str = ""  # --public-url: the base of invite links (else the request's)
    router = Routes.router

    def __attrs_post_init__(self) -> None:
        if self.timeline is None:  # a stand-alone API (tests): its own timeline rules
            self.timeline = TimelineService(self.chats, self.chats.store, self.chats.clock)
        if self.moderation is None:
            self.moderation = Moderation(self.chats, self.chats.store)

    @property
    def _timeline(self) -> TimelineService:
        assert self.timeline is not None
        return self.timeline

    def resource(self) -> KleinResource:
        return self.router.resource()

    # -- errors -----------------------------------------------------------------

    @router.handle_errors(ChatireError)
    def refused(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, ChatireError)
        if error.retry_after is not None:
            request.setHeader(b"Retry-After", str(whole_seconds(error.retry_after)).encode())
        if error.status == 401:
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="chatire"')
        return respond(request, error.status,
                        {"error": {"code": error.code, "message": error.message}})

    @router.handle_errors(HTTPException)
    def routing(self, request: IRequest, failure: Failure) -> bytes:
        if failure.check(MethodNotAllowed):
            return respond(request, 405, {"error": {
                "code": "invalid", "message": "method not allowed on this path"}})
        if failure.check(RouteNotFound):
            return respond(request, 404, {"error": {"code": "not_found",
                                                     "message": "no such path"}})
        error = failure.value
        assert isinstance(error, HTTPException)
        return respond(request, error.code or 400,
                        {"error": {"code": "invalid", "message": error.description or ""}})

    @router.handle_errors(Exception)
    def bug(self, request: IRequest, failure: Failure) -> bytes:
        log.failure("unhandled error in {method} {path}", failure,
                    method=request.method.decode(), path=request.path.decode())
        return respond(request, 500, {"error": {"code": "internal",
                                                 "message": "internal error"}})

    # -- accounts -------------------------------------------------------------

    @router.route("/api/auth/register", methods=["POST"])
    async def register(self, request: IRequest) -> bytes:
        body = self._body(request, "Register")
        user = await self.chats.register(body["username"], body["password"],
                                         body.get("display_name"), self._client(request))
        return respond(request, 201, {"user": user.to_json()})

    @router.route("/api/auth/token", methods=["POST"])
    async def sign_in(self, request: IRequest) -> bytes:
        body = self._body(request, "Credentials")
        token, user = await self.chats.sign_in(body["username"], body["password"],
                                               self._client(request))
        return respond(request, 200, {"token": token, "user": user.to_json()})

    @router.route("/api/auth/token", methods=["DELETE"])
    async def sign_out(self, request: IRequest) -> bytes:
        token = bearer_token(request) or ""
        await self.chats.authenticate(token)
        await self.chats.sign_out(token)
        return respond(request, 204, None)

    @router.route("/api/me", methods=["GET"])
    async def me(self, request: IRequest) -> bytes:
        user = await self._user(request)
        return respond(request, 200, {"user": user.to_json()})

    # -- chats ------------------------------------------------------------------

    @router.route("/api/chats", methods=["POST"])
    async def create_chat(self, request: IRequest) -> bytes:
        user = await self._user(request)
        body = self._body(request, "NewChat")
        chat = await self.chats.create_chat(user, body.get("title"))
        return respond(request, 201, {"chat": chat.to_json()})

    @router.route("/api/chats", methods=["GET"])
    async def list_chats(self, request: IRequest) -> bytes:
        user = await self._user(request)
        chats, after = await self.chats.list_chats(user, _int_arg(request, "limit"),
                                                   _str_arg(request, "cursor"))
        return respond(request, 200, {"chats": [chat.to_list_json() for chat in chats],
                                       "next": after})

    @router.route("/api/chats/<string:uri>", methods=["GET"])
    async def chat(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        chat, members = await self.chats.details(user, uri)
        if self.presence is not None:
            online = set(self.presence.online(uri))
            members = [attrs.evolve(m, online=m.user.id in online) for m in members]
        return respond(request, 200, {"chat": chat.to_json(),
                                       "members": [m.to_json() for m in members]})

    @router.route("/api/chats/<string:uri>/members", methods=["POST"])
    async def join(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        chat = await self.chats.join(user, uri)
        return respond(request, 200, {"chat": chat.to_json()})

    @router.route("/api/chats/<string:uri>/messages", methods=["POST"])
    async def post(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        body = self._body(request, "NewMessage")
        message, created = await self.chats.post(user, uri, body["message"],
                                                 body.get("client_id"), body.get("reply_to"))
        return respond(request, 201 if created else 200, {"message": message.to_json()})

    @router.route("/api/chats/<string:uri>/messages", methods=["GET"])
    async def history(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        page = await self.chats.history(user, uri, _int_arg(request, "after"),
                                        _int_arg(request, "before"),
                                        _int_arg(request, "limit"))
        return respond(request, 200, {"messages": [m.to_json() for m in page.messages],
                                       "has_more": page.has_more})

    # -- the timeline ---------------------------------------------------------------

    # An edit, delete or reaction is one store transaction, the token check in it
    # (TimelineService): the request's own checks come first, yet a bad token is told
    # before them, as on every other path.

    async def _parsed(self, request: IRequest, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except ChatireError:
            await self._user(request)
            raise

    @router.route("/api/chats/<string:uri>/messages/<string:seq>", methods=["PATCH"])
    async def edit(self, request: IRequest, uri: str, seq: str) -> bytes:
        body, number = await self._parsed(
            request, lambda: (self._body(request, "EditMessage"), _seq(seq)))
        event = await self._timeline.edit(bearer_token(request) or "", uri, number,
                                          body["message"])
        return _event(request, event)

    @router.route("/api/chats/<string:uri>/messages/<string:seq>", methods=["DELETE"])
    async def delete(self, request: IRequest, uri: str, seq: str) -> bytes:
        number = await self._parsed(request, lambda: _seq(seq))
        return _event(request, await self._timeline.delete(bearer_token(request) or "", uri,
                                                           number))

    @router.route("/api/chats/<string:uri>/messages/<string:seq>/reactions/<string:emoji>",
                  methods=["PUT", "DELETE"])
    async def react(self, request: IRequest, uri: str, seq: str, emoji: str) -> bytes:
        number = await self._parsed(request, lambda: _seq(seq))
        on = request.method == b"PUT"
        return _event(request, await self._timeline.react(bearer_token(request) or "", uri,
                                                          number, emoji, on))

    @router.route("/api/chats/<string:uri>/events", methods=["GET"])
    async def events(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        page = await self._timeline.events(user, uri, _int_arg(request, "after"),
                                           _int_arg(request, "limit"))
        return respond(request, 200, {"events": [item_json(item) for item in page.items],
                                       "has_more": page.has_more})

    @router.route("/api/chats/<string:uri>/read", methods=["PUT"])
    async def read(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        body = self._body(request, "ReadMark")
        await self._timeline.mark_read(user, uri, body["seq"])
        return respond(request, 204, None)

    # -- service ------------------------------------------------------------------

    @router.route("/api/config", methods=["GET"])
    def public_config(self, request: IRequest) -> bytes:
        return respond(request, 200, public_config(self.chats.config))

    @router.route("/api/openapi.json", methods=["GET"])
    def openapi_json(self, request: IRequest) -> bytes:
        return respond(request, 200, openapi.build())

    @router.route("/healthz", methods=["GET"])
    async def healthz(self, request: IRequest) -> bytes:
        status, body = await self.readiness.check()
        return respond(request, status, body)

    @router.route("/livez", methods=["GET"])
    def livez(self, request: IRequest) -> bytes:
        return respond(request, 200, LIVE)

    @router.route("/ws", methods=["GET"])
    def websocket_upgrade(self, request: IRequest) -> IResource:
        if self.websocket is None:
            raise NotFound("no WebSocket endpoint here")
        return self.websocket

    # -- the browser UI -------------------------------------------------------------

    @router.route("/c/<string:uri>", methods=["GET", "HEAD"])
    def chat_page(self, request: IRequest, uri: str) -> IResource:
        return self._ui_file(request, b"/index.html")

    @router.route("/i/<string:code>", methods=["GET", "HEAD"])
    def invite_page(self, request: IRequest, code: str) -> IResource:
        return self._ui_file(request, b"/index.html")

    @router.route("/", branch=True, methods=["GET", "HEAD"])
    def static(self, request: IRequest) -> IResource:
        if request.path.startswith(b"/api/"):
            raise NotFound("no such API path")
        return self._ui_file(request, request.path)

    def _ui_file(self, request: IRequest, path: bytes) -> IResource:
        """One of the UI's files, with the UI's headers; anything else is 404."""
        if self.ui_files is None or self.ui_files.root != self.web_root:
            self.ui_files = UIFiles(self.web_root)
        found = self.ui_files.find(path)
        if found is None:
            raise NotFound("no such file")
        for name, value in _UI_HEADERS.items():
            request.setHeader(name, value)
        return self.ui_files.resource(found)


def _seq(text: str) -> int:
    """A message's seq in a path: digits, or no such message (404, as any other path)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise NotFound("no such message")
    return int(text)


def _event(request: IRequest, event: Event | None) -> bytes:
    return respond(request, 200, {"event": None if event is None else event.to_json()})


_UI_HEADERS = {
    b"Content-Security-Policy": b"default-src 'self'; img-src 'self' data:; "
                               b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer",
    b"Cache-Control": b"no-cache",
}
