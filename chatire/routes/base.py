"""What every route group shares: the one Klein router, the JSON reply and request parsing."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

from chatire import jsonin
from chatire.chats import ChatService
from chatire.clientaddr import Network, client_address
from chatire.errors import TooLarge, Unauthenticated
from chatire.model import User
from chatire.schemas import validate

_JSON = b"application/json; charset=utf-8"


def respond(request: IRequest, status: int, body: Any | None) -> bytes:
    """Set the status and headers of a JSON reply (none for no body) and encode it."""
    request.setResponseCode(status)
    request.setHeader(b"Cache-Control", b"no-store")
    if body is None:
        return b""
    request.setHeader(b"Content-Type", _JSON)
    return jsonin.encode(body)


def bearer_token(request: IRequest) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    header = request.getHeader(b"authorization")
    if not header:
        return None
    scheme, _, token = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class Routes:
    """The base of the route groups: the API's one router and the helpers its routes use.

    The fields named here are chatire.api.ChatireAPI's; a group mixed into it registers
    its routes on ``router`` as its class body runs.
    """

    router = Klein()

    chats: ChatService
    max_body_bytes: int
    trusted_proxies: tuple[Network, ...]

    def _body(self, request: IRequest, schema: str) -> dict[str, Any]:
        if getattr(request, "too_large", False):
            raise TooLarge(f"request body over {self.max_body_bytes} bytes")
        raw = request.content.read(self.max_body_bytes + 1) if request.content else b""
        if len(raw) > self.max_body_bytes:
            raise TooLarge(f"request body over {self.max_body_bytes} bytes")
        if not raw:  # no body at all is {}; white space alone is not JSON
            raw = b"{}"
        return validate(schema, jsonin.loads(raw))

    def _client(self, request: IRequest) -> str:
        return client_address(request, self.trusted_proxies)

    async def _user(self, request: IRequest) -> User:
        return await self.chats.authenticate(bearer_token(request) or "")
