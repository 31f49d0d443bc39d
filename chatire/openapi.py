"""The OpenAPI 3.1 description of the HTTP API, built from chatire.schemas."""

from __future__ import annotations

from typing import Any

from chatire import __version__
from chatire.config import Config
from chatire.limits import (
    DEFAULT_EVENTS_LIMIT,
    DEFAULT_HISTORY_LIMIT,
    MAX_EMOJI_CHARS,
    MAX_EVENTS_LIMIT,
    MAX_HISTORY_LIMIT,
    public_config,
)
from chatire.schemas import OBJECTS, REQUESTS, TEXT
from chatire.text import REFUSED, Text
from chatire.timeline import EMOJI_PATTERN

Spec = dict[str, Any]

_ERRORS = {"400": "invalid", "401": "unauthenticated", "403": "forbidden",
           "404": "not_found", "409": "conflict", "413": "too_large",
           "429": "rate_limited", "503": "unavailable"}


def _ref(name: str) -> Spec:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Spec, description: str = "OK") -> Spec:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _reply(required: list[str], **properties: Spec) -> Spec:
    return {"type": "object", "required": required, "properties": properties}


def _operation(summary: str, responses: dict[str, Spec], *, body: str | None = None,
               auth: bool = True, errors: tuple[str, ...] = (), params: list[Spec] | None = None,
               body_required: bool = True) -> Spec:
    operation: Spec = {"summary": summary, "responses": dict(responses)}
    for status in errors + (("401",) if auth else ()) + ("400",):
        operation["responses"].setdefault(status, _json(_ref("Error"), _ERRORS[status]))
    if body is not None:
        operation["requestBody"] = {"required": body_required,
                                    "content": {"application/json": {"schema": _ref(body)}}}
        operation["responses"].setdefault("413", _json(_ref("Error"), "too_large"))
    if not auth:
        operation["security"] = []
    if params:
        operation["parameters"] = params
    return operation


_URI = {"name": "uri", "in": "path", "required": True, "schema": {"type": "string"}}
_SEQ_QUERY = [
    {"name": name, "in": "query", "required": False,
     "description": "give at most one of after and before (both: 400)",
     "schema": {"type": "integer", "minimum": minimum}}
    for name, minimum in (("after", 0), ("before", 1))
] + [{"name": "limit", "in": "query", "required": False,
      "schema": {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY_LIMIT,
                 "default": DEFAULT_HISTORY_LIMIT}}]
_PAGE_QUERY = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
    {"name": "cursor", "in": "query", "required": False,
     "description": "the `next` of the previous page, as given (opaque); anything else "
                    "is 400 invalid", "schema": {"type": "string"}},
]


def _documented(schema: Spec) -> Spec:
    """A request schema with its text rules (chatire.text) spelled as patterns.

    Lone surrogates are left out: JSON Schema patterns are ECMA-262 regular
    expressions, whose surrogate ranges would refuse every character past U+FFFF.
    """
    out = dict(schema)
    kind = out.pop(TEXT, None)
    if kind is not None and "pattern" not in out:
        out["pattern"] = f"^[^{REFUSED[Text(kind)]}]*$"
    if "properties" in out:
        out["properties"] = {k: _documented(v) for k, v in out["properties"].items()}
    if "anyOf" in out:
        out["anyOf"] = [_documented(option) for option in out["anyOf"]]
    return out


_REQUESTS = {name: _documented(schema) for name, schema in REQUESTS.items()}
_MESSAGE_CHARS = REFUSED[Text.MESSAGE]
# The server strips a message, then takes 1 to --max-message-chars characters: so
# the document asks for at least one character that is not white space.
_NEW_MESSAGE: Spec = {**_REQUESTS["NewMessage"], "properties": {
    **_REQUESTS["NewMessage"]["properties"],
    "message": {"type": "string", "minLength": 1,
                "pattern": f"^[^{_MESSAGE_CHARS}]*[^\\s\\x00-\\x1f][^{_MESSAGE_CHARS}]*$",
                "description": "stripped of leading and trailing white space, then 1 to "
                               "--max-message-chars (default 4000) characters"}}}
_EDIT_MESSAGE: Spec = {**_REQUESTS["EditMessage"], "properties": {
    **_REQUESTS["EditMessage"]["properties"],
    "message": _NEW_MESSAGE["properties"]["message"]}}
_LIMITS = public_config(Config())["limits"]  # the names and types, from the one definition
_CONFIG = _reply(["protocol", "limits"], protocol={"type": "integer"},
                 limits=_reply(list(_LIMITS), **{
                     name: {"type": "integer" if isinstance(value, int) else "number"}
                     for name, value in _LIMITS.items()}))
_EVENT = _reply(["event"], event={"anyOf": [_ref("Event"), {"type": "null"}]})
_SEQ = {"name": "seq", "in": "path", "required": True,
        "schema": {"type": "integer", "minimum": 1}}
_EMOJI = {"name": "emoji", "in": "path", "required": True,
          "description": f"1 to {MAX_EMOJI_CHARS} characters, no white space, percent-encoded",
          "schema": {"type": "string", "pattern": EMOJI_PATTERN}}
_EVENTS_QUERY = [
    {"name": "after", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 0, "default": 0}},
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_LIMIT,
                "default": DEFAULT_EVENTS_LIMIT}},
]
_USER_ID = {"name": "user_id", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1}}
_CODE = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
_BAN = {"name": "ban", "in": "query", "required": False,
        "schema": {"type": "integer", "enum": [0, 1]}}
_CHAT = _reply(["chat"], chat=_ref("Chat"))
_USER = _reply(["user"], user=_ref("User"))
_MESSAGE = _reply(["message"], message=_ref("Message"))


def build() -> Spec:
    """The whole document, as served at /api/openapi.json."""
    paths: Spec = {
        "/api/auth/register": {"post": _operation(
            "Create an account", {"201": _json(_USER, "Created")}, body="Register",
            auth=False, errors=("409", "429", "503"))},
        "/api/auth/token": {
            "post": _operation("Sign in: get a bearer token",
                               {"200": _json(_reply(["token", "user"],
                                                    token={"type": "string"},
                                                    user=_ref("User")))},
                               body="Credentials", auth=False,
                               errors=("401", "429", "503")),
            "delete": _operation("Sign out: revoke the presented token",
                                 {"204": {"description": "Revoked"}}),
        },
        "/api/me": {"get": _operation("The signed-in user", {"200": _json(_USER)})},
        "/api/chats": {
            "post": _operation("Create a chat", {"201": _json(_CHAT, "Created")},
                               body="NewChat", body_required=False,  # none: untitled
                               errors=("429",)),
            "get": _operation("My chats, latest activity first, a page at a time",
                              {"200": _json(_reply(
                                  ["chats", "next"],
                                  chats={"type": "array", "items": _ref("Chat")},
                                  next={"type": ["string", "null"],
                                        "description": "the cursor of the next page"}))},
                              params=_PAGE_QUERY),
        },
        "/api/chats/{uri}": {
            "get": _operation(
                "A chat and its members", {"200": _json(_reply(
                    ["chat", "members"], chat=_ref("Chat"),
                    members={"type": "array", "items": _ref("User")}))},
                errors=("403", "404"), params=[_URI]),
            "patch": _operation(
                "Rename the chat or choose how people join (admins and the owner)",
                {"200": _json(_CHAT)}, body="ChatSettings", body_required=False,
                errors=("403", "404"), params=[_URI]),
            "delete": _operation(
                "Delete the chat and everything in it (the owner)",
                {"204": {"description": "Deleted"}}, errors=("403", "404"), params=[_URI]),
        },
        "/api/chats/{uri}/members/{user_id}": {"delete": _operation(
            "Remove a member (admins remove members; the owner anyone); ban=1 keeps them out",
            {"204": {"description": "Removed"}}, errors=("403", "404"),
            params=[_URI, _USER_ID, _BAN])},
        "/api/chats/{uri}/members/{user_id}/role": {"put": _operation(
            "Give a member a role (the owner); owner hands the chat over",
            {"200": _json(_reply(["member"], member={"type": "object"}))}, body="NewRole",
            errors=("403", "404"), params=[_URI, _USER_ID])},
        "/api/chats/{uri}/bans/{user_id}": {"delete": _operation(
            "Lift a ban (admins and the owner)", {"204": {"description": "Unbanned"}},
            errors=("403", "404"), params=[_URI, _USER_ID])},
        "/api/chats/{uri}/invites": {
            "post": _operation(
                "Create an invite code (admins and the owner)",
                {"201": _json(_reply(["invite"], invite={"type": "object"}), "Created")},
                body="NewInvite", body_required=False, errors=("403", "404"), params=[_URI]),
            "get": _operation(
                "The chat's live invites (admins and the owner)",
                {"200": _json(_reply(["invites"], invites={"type": "array",
                                                           "items": {"type": "object"}}))},
                errors=("403", "404"), params=[_URI]),
        },
        "/api/chats/{uri}/invites/{code}": {"delete": _operation(
            "Revoke an invite", {"204": {"description": "Revoked"}}, errors=("403", "404"),
            params=[_URI, _CODE])},
        "/api/invites/{code}": {
            "get": _operation(
                "Where an invite leads and who made it (for the join page)",
                {"200": _json(_reply(["chat", "invited_by"], chat={"type": "object"},
                                     invited_by=_ref("User")))},
                errors=("404",), params=[_CODE]),
            "post": _operation(
                "Join through an invite (one 404 for unknown, expired, used up, revoked)",
                {"200": _json(_CHAT)}, errors=("403", "404"), params=[_CODE]),
        },
        "/api/direct": {"post": _operation(
            "The direct chat with a user: made the first time, the same one after",
            {"201": _json(_CHAT, "Created"), "200": _json(_CHAT, "Already there")},
            body="DirectChat", errors=("404",))},
        "/api/chats/{uri}/members": {"post": _operation(
            "Join a chat (idempotent)", {"200": _json(_CHAT)}, errors=("404",),
            params=[_URI])},
        "/api/chats/{uri}/members/me": {"delete": _operation(
            "Leave a chat (the owner's role passes on; a group chat's last member deletes "
            "it)", {"204": {"description": "Left"}}, errors=("404",), params=[_URI])},
        "/api/chats/{uri}/messages": {
            "post": _operation(
                "Post a message (idempotent on client_id)",
                {"201": _json(_MESSAGE, "Created"),
                 "200": _json(_MESSAGE, "Already stored under that client_id")},
                body="NewMessage", errors=("403", "404", "429", "503"), params=[_URI]),
            "get": _operation(
                "History, ascending by seq",
                {"200": _json(_reply(["messages", "has_more"],
                                     messages={"type": "array", "items": _ref("Message")},
                                     has_more={"type": "boolean"}))},
                errors=("403", "404"), params=[_URI, *_SEQ_QUERY]),
        },
        "/api/chats/{uri}/messages/{seq}": {
            "patch": _operation(
                "Edit one's own message", {"200": _json(_EVENT)}, body="EditMessage",
                errors=("403", "404", "409", "429"), params=[_URI, _SEQ]),
            "delete": _operation(
                "Delete a message (its author, an admin or the owner); again: the first "
                "delete event", {"200": _json(_EVENT)}, errors=("403", "404", "429"),
                params=[_URI, _SEQ]),
        },
        "/api/chats/{uri}/messages/{seq}/reactions/{emoji}": {
            "put": _operation(
                "React (event null if that reaction was there)", {"200": _json(_EVENT)},
                errors=("403", "404", "409", "429"), params=[_URI, _SEQ, _EMOJI]),
            "delete": _operation(
                "Take a reaction back (event null if there was none)",
                {"200": _json(_EVENT)}, errors=("403", "404", "409", "429"),
                params=[_URI, _SEQ, _EMOJI]),
        },
        "/api/chats/{uri}/events": {"get": _operation(
            "The raw timeline after a seq, every kind, ascending",
            {"200": _json(_reply(["events", "has_more"],
                                 events={"type": "array", "items": {"type": "object"}},
                                 has_more={"type": "boolean"}))},
            errors=("403", "404"), params=[_URI, *_EVENTS_QUERY])},
        "/api/chats/{uri}/read": {"put": _operation(
            "Mark the chat read up to a seq (never lowers; capped at last_seq)",
            {"204": {"description": "Noted"}}, body="ReadMark", errors=("403", "404"),
            params=[_URI])},
        "/api/me/notifications": {
            "get": _operation("My notification settings (the secret never shown)",
                              {"200": _json(_NOTIFY_REPLY)}),
            "put": _operation("Change my notification settings (any subset)",
                              {"200": _json(_NOTIFY_REPLY)}, body="NotifySettings"),
        },
        "/api/me/notifications/test": {"post": _operation(
            "Send a test notification through my channels now",
            {"200": _json(_reply(["results"], results={
                "type": "object", "additionalProperties": {"type": "string"}}))},
            errors=("429",))},
        "/api/chats/{uri}/notifications": {
            "get": _operation("My level for this chat (null: my default)",
                              {"200": _json(_LEVEL_REPLY)}, errors=("403", "404"),
                              params=[_URI]),
            "put": _operation("Set my level for this chat (null: back to my default)",
                              {"200": _json(_LEVEL_REPLY)}, body="ChatNotifyLevel",
                              errors=("403", "404"), params=[_URI]),
        },
        "/api/config": {"get": _operation(
            "The protocol version and the limits this daemon applies now",
            {"200": _json(_ref("Config"))}, auth=False)},
        "/api/openapi.json": {"get": _operation(
            "This document", {"200": _json({"type": "object"})}, auth=False)},
        "/healthz": {"get": _operation(
            "Health of the store and the bus",
            {"200": _json(_health()), "503": _json(_health(), "Unhealthy")}, auth=False)},
        "/livez": {"get": _operation(
            "Liveness: the daemon's event loop answers (no store or bus check)",
            {"200": _json(_reply(["status"], status={"const": "ok"}))}, auth=False)},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "chatire", "version": __version__,
                 "description": "Realtime chat: HTTP API (live delivery is at GET /ws)."},
        "paths": paths,
        "components": {
            "schemas": {**OBJECTS, **_REQUESTS, "NewMessage": _NEW_MESSAGE,
                        "EditMessage": _EDIT_MESSAGE, "Config": _CONFIG},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


_LEVEL = {"type": ["string", "null"], "enum": ["all", "mentions", "none", None]}
_LEVEL_REPLY = _reply(["level"], level=_LEVEL)
_NOTIFY_REPLY = _reply(["notifications", "email_enabled"], email_enabled={"type": "boolean"},
                       notifications=_reply(
                           ["level", "delay", "webhook", "email"],
                           level={"type": "string"}, delay={"type": "integer"},
                           email={"type": ["string", "null"]},
                           webhook={"type": ["object", "null"]}))


def _health() -> Spec:
    return _reply(["store", "bus"], store={"type": "string"}, bus={"type": "string"})
