"""HTTP routes of running a chat: settings, roles, removals and bans, invites, direct chats."""

from __future__ import annotations

from twisted.web.iweb import IRequest

from chatire.errors import NotFound
from chatire.moderation import Moderation
from chatire.routes.base import Routes, respond


class ModerationRoutes(Routes):
    """The routes that call chatire.moderation.Moderation (and a leave, which ChatService does)."""

    router = Routes.router

    moderation: Moderation | None
    public_url: str  # --public-url: the base of invite links (else the request's)

    @property
    def _rules(self) -> Moderation:
        assert self.moderation is not None
        return self.moderation

    def _base(self, request: IRequest) -> str:
        """The base of links handed out: --public-url, else what the client used."""
        return self.public_url.rstrip("/") or _origin(request)

    @router.route("/api/chats/<string:uri>", methods=["PATCH"])
    async def change_chat(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        body = self._body(request, "ChatSettings")
        chat = await self._rules.change(user, uri, body.get("title"), body.get("join"))
        return respond(request, 200, {"chat": chat.to_json()})

    @router.route("/api/chats/<string:uri>", methods=["DELETE"])
    async def delete_chat(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        await self._rules.delete(user, uri)
        return respond(request, 204, None)

    @router.route("/api/chats/<string:uri>/members/<string:user_id>", methods=["DELETE"])
    async def remove_member(self, request: IRequest, uri: str, user_id: str) -> bytes:
        user = await self._user(request)
        if user_id == "me":
            await self.chats.leave(user, uri)
        else:
            ban = request.args.get(b"ban", [b"0"])[0] in (b"1", b"true")
            await self._rules.remove(user, uri, _id(user_id), ban)
        return respond(request, 204, None)

    @router.route("/api/chats/<string:uri>/bans/<string:user_id>", methods=["DELETE"])
    async def unban(self, request: IRequest, uri: str, user_id: str) -> bytes:
        user = await self._user(request)
        await self._rules.unban(user, uri, _id(user_id))
        return respond(request, 204, None)

    @router.route("/api/chats/<string:uri>/members/<string:user_id>/role", methods=["PUT"])
    async def set_role(self, request: IRequest, uri: str, user_id: str) -> bytes:
        user = await self._user(request)
        body = self._body(request, "NewRole")
        member = await self._rules.set_role(user, uri, _id(user_id), body["role"])
        return respond(request, 200, {"member": member.to_json()})

    @router.route("/api/chats/<string:uri>/invites", methods=["POST"])
    async def create_invite(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        body = self._body(request, "NewInvite")
        invite = await self._rules.create_invite(user, uri, body.get("expires_in"),
                                                 body.get("max_uses"))
        return respond(request, 201, {"invite": invite.to_json(self._base(request))})

    @router.route("/api/chats/<string:uri>/invites", methods=["GET"])
    async def list_invites(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        found = await self._rules.invites(user, uri)
        base = self._base(request)
        return respond(request, 200, {"invites": [i.to_json(base) for i in found]})

    @router.route("/api/chats/<string:uri>/invites/<string:code>", methods=["DELETE"])
    async def revoke_invite(self, request: IRequest, uri: str, code: str) -> bytes:
        user = await self._user(request)
        await self._rules.revoke_invite(user, uri, code)
        return respond(request, 204, None)

    @router.route("/api/invites/<string:code>", methods=["GET"])
    async def invite(self, request: IRequest, code: str) -> bytes:
        await self._user(request)
        chat, by = await self._rules.invite_chat(code)
        return respond(request, 200, {"chat": {"title": chat.title, "kind": chat.kind},
                                      "invited_by": by.to_json()})

    @router.route("/api/invites/<string:code>", methods=["POST"])
    async def use_invite(self, request: IRequest, code: str) -> bytes:
        user = await self._user(request)
        chat = await self._rules.use_invite(user, code)
        return respond(request, 200, {"chat": chat.to_json()})

    @router.route("/api/direct", methods=["POST"])
    async def direct(self, request: IRequest) -> bytes:
        user = await self._user(request)
        body = self._body(request, "DirectChat")
        chat, created = await self._rules.direct(user, body["username"])
        return respond(request, 201 if created else 200, {"chat": chat.to_json()})


def _id(text: str) -> int:
    """A user id in a path: digits, or no such user (404)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound("no such user")
    return int(text)


def _origin(request: IRequest) -> str:
    """The scheme and host the client used: the base of links the daemon hands out."""
    host = (request.getHeader(b"host") or b"localhost").decode("latin-1")
    return ("https://" if request.isSecure() else "http://") + host
