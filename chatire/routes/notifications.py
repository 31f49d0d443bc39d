"""HTTP routes of a user's notification settings and of each chat's notification level."""

from __future__ import annotations

from twisted.web.iweb import IRequest

from chatire.errors import NotFound
from chatire.notify.preferences import Preferences
from chatire.routes.base import Routes, respond


class NotificationRoutes(Routes):
    """``/api/me/notifications`` and ``/api/chats/<uri>/notifications``: Preferences' calls."""

    router = Routes.router

    notifications: Preferences | None

    @property
    def _notify(self) -> Preferences:
        if self.notifications is None:
            raise NotFound("notifications are not served here")
        return self.notifications

    @router.route("/api/me/notifications", methods=["GET"])
    async def notify_settings(self, request: IRequest) -> bytes:
        user = await self._user(request)
        settings = await self._notify.get(user)
        return respond(request, 200, {"notifications": settings.to_json(),
                                      "email_enabled": self._notify.email_enabled})

    @router.route("/api/me/notifications", methods=["PUT"])
    async def change_notify_settings(self, request: IRequest) -> bytes:
        user = await self._user(request)
        body = self._body(request, "NotifySettings")
        settings = await self._notify.put(user, body)
        return respond(request, 200, {"notifications": settings.to_json(),
                                      "email_enabled": self._notify.email_enabled})

    @router.route("/api/me/notifications/test", methods=["POST"])
    async def test_notification(self, request: IRequest) -> bytes:
        user = await self._user(request)
        return respond(request, 200, {"results": await self._notify.test(user)})

    @router.route("/api/chats/<string:uri>/notifications", methods=["GET"])
    async def chat_notify_level(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        return respond(request, 200, {"level": await self._notify.chat_level(user, uri)})

    @router.route("/api/chats/<string:uri>/notifications", methods=["PUT"])
    async def set_chat_notify_level(self, request: IRequest, uri: str) -> bytes:
        user = await self._user(request)
        body = self._body(request, "ChatNotifyLevel")
        level = await self._notify.set_chat_level(user, uri, body["level"])
        return respond(request, 200, {"level": level})
