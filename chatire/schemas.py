"""JSON Schemas of every request body and frame: one source for validation and OpenAPI."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend

from chatire import text
from chatire.errors import Invalid
from chatire.limits import (
    MAX_CLIENT_ID_CHARS,
    MAX_DISPLAY_NAME_CHARS,
    MAX_INVITE_SECONDS,
    MAX_INVITE_USES,
    MAX_PASSWORD_CHARS,
    MAX_SEQ,
    MAX_TITLE_CHARS,
    MAX_USERNAME_CHARS,
    MIN_PASSWORD_CHARS,
)
from chatire.notify.mail import MAX_ADDRESS_CHARS
from chatire.notify.settings import LEVELS, MAX_DELAY, MAX_SECRET_CHARS
from chatire.notify.webhook import MAX_URL_CHARS

Schema = dict[str, Any]

#: The keyword that gives a string field its rule of chatire.text ("message", "name"
#: or "plain"); ChatService enforces the same rules whatever the transport.
TEXT = "x-text"
MESSAGE: Schema = {"type": "string", TEXT: "message"}
NAME: Schema = {"type": "string", TEXT: "name"}
PLAIN: Schema = {"type": "string", TEXT: "plain"}
USERNAME: Schema = {"type": "string", "pattern": f"^[A-Za-z0-9_.-]{{1,{MAX_USERNAME_CHARS}}}$"}
PASSWORD: Schema = {**PLAIN, "minLength": MIN_PASSWORD_CHARS, "maxLength": MAX_PASSWORD_CHARS}
#: Any string: a name that is not a chat the server issued is ChatService's not_found.
CHAT_URI: Schema = PLAIN
SEQ: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}
CLIENT_ID: Schema = {**PLAIN, "minLength": 1, "maxLength": MAX_CLIENT_ID_CHARS}


#: A DNS name: labels of letters, digits and inner hyphens, dot-separated.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
#: A webhook URL: http(s), a host name or IPv4 address, a port, then printable ASCII.
WEBHOOK_URL = rf"^https?://{_HOST}(?::{_PORT})?(?:[/?#][!-~]*)?$"
#: An e-mail address as notifications take it: plain ASCII, one @, a DNS domain.
EMAIL = rf"^[A-Za-z0-9._%+-]{{1,64}}@{_HOST}$"


def _object(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties,
            "additionalProperties": True}


REQUESTS: dict[str, Schema] = {
    "Register": _object(["username", "password"], username=USERNAME, password=PASSWORD,
                        display_name={**NAME, "type": ["string", "null"],
                                      "maxLength": MAX_DISPLAY_NAME_CHARS}),
    "Credentials": _object(["username", "password"], username=NAME, password=PLAIN),
    "NewChat": _object([], title={**NAME, "type": ["string", "null"],
                                  "maxLength": MAX_TITLE_CHARS}),
    "NewMessage": _object(["message"], message=MESSAGE,
                          client_id={"anyOf": [CLIENT_ID, {"type": "null"}]},
                          reply_to={"anyOf": [SEQ, {"type": "null"}]}),
    "EditMessage": _object(["message"], message=MESSAGE),
    "ChatSettings": _object([], title={**NAME, "maxLength": MAX_TITLE_CHARS},
                            join={"type": "string", "enum": ["link", "invite"]}),
    "NewRole": _object(["role"], role={"type": "string", "enum": ["owner", "admin", "member"]}),
    "NewInvite": _object([], expires_in={"anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_INVITE_SECONDS}, {"type": "null"}]},
                         max_uses={"anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_INVITE_USES}, {"type": "null"}]}),
    "DirectChat": _object(["username"], username=USERNAME),
    "ReadMark": _object(["seq"], seq=SEQ),
    "NotifySettings": _object(
        [], level={"type": "string", "enum": list(LEVELS)},
        delay={"type": "integer", "minimum": 0, "maximum": MAX_DELAY},
        webhook={"anyOf": [{"type": "null"}, {**_object(
            ["url"], url={"type": "string", "pattern": WEBHOOK_URL,
                          "maxLength": MAX_URL_CHARS},
            secret={"anyOf": [{"type": "null"}, {**PLAIN, "maxLength": MAX_SECRET_CHARS}]})}]},
        email={"anyOf": [{"type": "null"}, {"type": "string", "pattern": EMAIL,
                                             "maxLength": MAX_ADDRESS_CHARS}]}),
    "ChatNotifyLevel": _object(["level"], level={"anyOf": [
        {"type": "null"}, {"type": "string", "enum": list(LEVELS)}]}),
}

FRAMES: dict[str, Schema] = {
    "auth": _object(["type", "token"], token=PLAIN),
    "subscribe": _object(["type", "chat"], chat=CHAT_URI,
                         after={"anyOf": [SEQ, {"type": "null"}]}),
    "unsubscribe": _object(["type", "chat"], chat=CHAT_URI),
    "send": _object(["type", "chat", "message"], chat=CHAT_URI, message=MESSAGE,
                    client_id={"anyOf": [CLIENT_ID, {"type": "null"}]},
                    reply_to={"anyOf": [SEQ, {"type": "null"}]}),
    "read": _object(["type", "chat", "seq"], chat=CHAT_URI, seq=SEQ),
    "typing": _object(["type", "chat"], chat=CHAT_URI),
}

_USER: Schema = _object(["id", "username", "display_name"], id={"type": "integer"},
                        username={"type": "string"}, display_name={"type": "string"})
OBJECTS: dict[str, Schema] = {
    "User": _USER,
    "Chat": _object(["uri", "title", "owner", "created_at", "last_seq"],
                    uri={"type": "string"}, title={"type": "string"},
                    owner={"$ref": "#/components/schemas/User"},
                    created_at={"type": "string", "format": "date-time"},
                    last_seq={"type": "integer"},
                    last_message={"type": ["object", "null"]}),
    "Message": _object(["chat", "seq", "id", "user", "message", "client_id", "created_at"],
                       chat={"type": "string"}, seq={"type": "integer"},
                       id={"type": "integer"},
                       user={"$ref": "#/components/schemas/User"},
                       message={"type": "string"},
                       client_id={"type": ["string", "null"]},
                       created_at={"type": "string", "format": "date-time"},
                       reply_to={"type": ["integer", "null"]},
                       edited_at={"type": ["string", "null"]},
                       deleted={"type": "boolean"},
                       reactions={"type": "array", "items": _object(
                           ["emoji", "count", "users"], emoji={"type": "string"},
                           count={"type": "integer"},
                           users={"type": "array", "items": {"type": "integer"}})}),
    "Event": _object(["chat", "seq", "id", "kind", "user", "created_at"],
                     chat={"type": "string"}, seq={"type": "integer"}, id={"type": "integer"},
                     kind={"type": "string"}, user={"$ref": "#/components/schemas/User"},
                     created_at={"type": "string", "format": "date-time"},
                     target={"type": "integer"}),
    "Error": _object(["error"], error=_object(["code", "message"], code={"type": "string"},
                                              message={"type": "string"})),
}


def _text(validator: Any, kind: str, instance: Any, schema: Schema) -> Any:
    if type(instance) is str:
        why = text.problem(instance, text.Text(kind))
        if why is not None:
            yield ValidationError(why)


#: Draft 2020-12 with the text rules: jsonschema decides and words the errors.
Validator = extend(Draft202012Validator, {TEXT: _text})
_validators = {name: Validator(schema)
               for name, schema in {**REQUESTS, **{f"frame:{k}": v for k, v in FRAMES.items()}}
               .items()}


Check = Callable[[Any], bool]
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "null": (type(None),),
    "object": (dict,), "array": (list,), "boolean": (bool,),
}
_KNOWN = frozenset({"type", "required", "properties", "additionalProperties", "minLength",
                    "maxLength", "anyOf", "pattern", "minimum", "maximum", "format", "enum",
                    TEXT})


def quick_check(schema: Schema) -> Check | None:
    """A fast yes for values the schema surely accepts; None if it uses other keywords.

    jsonschema takes ~100 us a frame. This may say no to a valid value (jsonschema
    then decides, and words the error) but never yes to an invalid one.
    """
    if not set(schema) <= _KNOWN or schema.get("additionalProperties", True) is not True:
        return None
    checks: list[Check] = []
    if "type" in schema:
        names = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not all(name in _TYPES for name in names):
            return None
        kinds = tuple(t for name in names for t in _TYPES[name])  # type(True) is not int
        checks.append(lambda v: type(v) in kinds)
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if low or high is not None:
        top = high if high is not None else float("inf")
        checks.append(lambda v: type(v) is not str or low <= len(v) <= top)
    if "pattern" in schema:
        search = re.compile(schema["pattern"]).search
        checks.append(lambda v: type(v) is not str or search(v) is not None)
    if TEXT in schema:
        problem, kind = text.problem, text.Text(schema[TEXT])
        # printable: keeps every rule (text.problem's own fast path, without its call)
        checks.append(lambda v: type(v) is not str or v.isprintable()
                      or problem(v, kind) is None)
    if "minimum" in schema:
        least = schema["minimum"]
        checks.append(lambda v: type(v) not in (int, float) or v >= least)
    if "enum" in schema:
        allowed = frozenset(schema["enum"])
        checks.append(lambda v: type(v) is str and v in allowed)
    if "maximum" in schema:
        most = schema["maximum"]
        checks.append(lambda v: type(v) not in (int, float) or v <= most)
    if "required" in schema:
        required = frozenset(schema["required"])
        checks.append(lambda v: type(v) is not dict or required <= v.keys())
    if "properties" in schema:
        props: list[tuple[str, Check]] = []
        for key, sub in schema["properties"].items():
            check = quick_check(sub)
            if check is None:
                return None
            props.append((key, check))
        checks.append(_properties(tuple(props)))
    if "anyOf" in schema:
        options = [quick_check(sub) for sub in schema["anyOf"]]
        if any(option is None for option in options):
            return None
        checks.append(_any(tuple(option for option in options if option is not None)))
    return _all(tuple(checks))


# The combinators loop instead of calling all()/any() on a generator: a frame is
# checked without allocating, so it does not bring the next garbage collection nearer.

def _all(checks: tuple[Check, ...]) -> Check:
    def check(value: Any) -> bool:
        for one in checks:
            if not one(value):
                return False
        return True
    return check


def _any(choices: tuple[Check, ...]) -> Check:
    def check(value: Any) -> bool:
        for one in choices:
            if one(value):
                return True
        return False
    return check


def _properties(props: tuple[tuple[str, Check], ...]) -> Check:
    def check(value: Any) -> bool:
        if type(value) is not dict:
            return True
        for key, one in props:
            if key in value and not one(value[key]):
                return False
        return True
    return check


_quick = {name: quick_check(validator.schema) for name, validator in _validators.items()}


def validate(name: str, value: Any) -> dict[str, Any]:
    """Check a decoded body or frame against its schema; Invalid with a clear message."""
    if not isinstance(value, dict):
        raise Invalid("expected a JSON object")
    quick = _quick[name]
    if quick is not None and quick(value):
        return value
    error = next(iter(sorted(_validators[name].iter_errors(value), key=_depth)), None)
    if error is not None:
        raise Invalid(_describe(error))
    return value


def _depth(error: ValidationError) -> int:
    return -len(error.path)


def _describe(error: ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "pattern":
        return (f"{where}: may only contain letters, digits, '_', '.' and '-' "
                f"(1 to {MAX_USERNAME_CHARS})")
    if error.validator == "anyOf":
        for cause in error.context or ():
            if cause.validator == TEXT:  # a string of the right type, wrong characters
                return f"{where}: {cause.message}"
        return f"{where}: has the wrong type or value"
    if error.validator in ("minLength", "maxLength"):  # never echo the value (a password)
        low, high = error.schema.get("minLength"), error.schema.get("maxLength")
        if low is not None and high is not None:
            return f"{where}: {low} to {high} characters"
        return f"{where}: at least {low} characters" if high is None else \
            f"{where}: at most {high} characters"
    return f"{where}: {error.message}" if where else error.message
