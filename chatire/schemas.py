"""JSON Schemas of every request body and frame: one source for validation and OpenAPI."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from chatire.errors import Invalid

Schema = dict[str, Any]

USERNAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,150}$"}
PASSWORD: Schema = {"type": "string", "minLength": 8, "maxLength": 1024}
CHAT_URI: Schema = {"type": "string", "minLength": 1, "maxLength": 64}
SEQ: Schema = {"type": "integer", "minimum": 0}
CLIENT_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 128}


def _object(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties,
            "additionalProperties": True}


REQUESTS: dict[str, Schema] = {
    "Register": _object(["username", "password"], username=USERNAME, password=PASSWORD,
                        display_name={"type": ["string", "null"], "maxLength": 150}),
    "Credentials": _object(["username", "password"], username={"type": "string"},
                           password={"type": "string"}),
    "NewChat": _object([], title={"type": ["string", "null"], "maxLength": 200}),
    "NewMessage": _object(["message"], message={"type": "string"},
                          client_id={"anyOf": [CLIENT_ID, {"type": "null"}]}),
}

FRAMES: dict[str, Schema] = {
    "auth": _object(["type", "token"], token={"type": "string"}),
    "subscribe": _object(["type", "chat"], chat=CHAT_URI,
                         after={"anyOf": [SEQ, {"type": "null"}]}),
    "unsubscribe": _object(["type", "chat"], chat=CHAT_URI),
    "send": _object(["type", "chat", "message"], chat=CHAT_URI, message={"type": "string"},
                    client_id={"anyOf": [CLIENT_ID, {"type": "null"}]}),
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
                    last_seq={"type": "integer"}),
    "Message": _object(["chat", "seq", "id", "user", "message", "client_id", "created_at"],
                       chat={"type": "string"}, seq={"type": "integer"},
                       id={"type": "integer"},
                       user={"$ref": "#/components/schemas/User"},
                       message={"type": "string"},
                       client_id={"type": ["string", "null"]},
                       created_at={"type": "string", "format": "date-time"}),
    "Error": _object(["error"], error=_object(["code", "message"], code={"type": "string"},
                                              message={"type": "string"})),
}

_validators = {name: Draft202012Validator(schema)
               for name, schema in {**REQUESTS, **{f"frame:{k}": v for k, v in FRAMES.items()}}
               .items()}


def validate(name: str, value: Any) -> dict[str, Any]:
    """Check a decoded body or frame against its schema; Invalid with a clear message."""
    if not isinstance(value, dict):
        raise Invalid("expected a JSON object")
    error = next(iter(sorted(_validators[name].iter_errors(value), key=_depth)), None)
    if error is not None:
        raise Invalid(_describe(error))
    return value


def _depth(error: ValidationError) -> int:
    return -len(error.path)


def _describe(error: ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "pattern":
        return f"{where}: may only contain letters, digits, '_', '.' and '-' (1 to 150)"
    if error.validator == "anyOf":
        return f"{where}: has the wrong type or value"
    return f"{where}: {error.message}" if where else error.message
