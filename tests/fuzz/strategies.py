"""Hostile inputs for the fuzzers, and what PROTOCOL.md says the daemon must answer to them.

Text: arbitrary Unicode with lone surrogates, NUL, C0 and C1 controls and the bidirectional
controls mixed in; names: everything a ``chat`` field can hold that the server never issued
(its internal channel, broker-reserved names, empty, too long); JSON nested to any depth.
Bodies and frames go on the wire with ``json.dumps(ensure_ascii=True)``, so a lone surrogate
travels as the escape ``"\\ud800"`` that a hostile client would send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from chatire import openapi
from chatire.frames import CONTROL
from chatire.schemas import FRAMES

SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
C0 = [chr(c) for c in range(0x20)]
C1 = [chr(c) for c in range(0x80, 0xA0)]
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
#: Characters that are fine everywhere, some of them odd.
ODD = ["\x7f", "\u200b", "\u200f", "\u2028", "\ufeff", "\uffff", "\U0001f600", "\U0010ffff",
       "\u0301", " ", "\u00a0"]
BAD = SURROGATES + C0 + BIDI

#: Text fields PROTOCOL.md calls names: they also refuse the bidirectional controls.
NAME_FIELDS = frozenset({"username", "display_name", "title"})
#: The one text field where tab and newline are allowed.
MESSAGE_FIELDS = frozenset({"message"})


def _characters() -> st.SearchStrategy[str]:
    return st.one_of(
        st.characters(codec=None, exclude_categories=()),  # any code point, surrogates too
        st.sampled_from(SURROGATES + C0 + C1 + BIDI + ODD),
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    )


def hostile_text(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Any text, and about half the time one that holds a character the protocol refuses."""
    anything = st.text(_characters(), min_size=min_size, max_size=max_size)
    around = st.text(_characters(), max_size=max(0, max_size // 2 - 1))
    with_bad = st.tuples(around, st.sampled_from(BAD), around).map("".join)
    return st.one_of(anything, with_bad)


def on_the_wire(value: str) -> str:
    """The string the server decodes from ``value`` sent as JSON (surrogate pairs joined)."""
    decoded: str = json.loads(json.dumps(value))
    return decoded


def text_refused(field: str, value: str) -> bool:
    """True when PROTOCOL.md (Abuse limits: Text) demands 400 ``invalid`` for this value."""
    text = on_the_wire(value)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return True  # a lone surrogate: not Unicode at all
    allowed = "\t\n" if field in MESSAGE_FIELDS else ""
    if any(ord(c) < 0x20 and c not in allowed for c in text):
        return True
    return field in NAME_FIELDS and any(c in BIDI for c in text)


def wire(body: Any) -> bytes:
    """A body or frame as a client puts it on the wire: ASCII JSON, escapes and all."""
    return json.dumps(body, ensure_ascii=True).encode("ascii")


# -- names --------------------------------------------------------------------------------

#: Names no client may use as a chat: the daemon's own channel, RabbitMQ's reserved
#: ``amq.`` prefix, the empty name, over-long names, exchange-name junk.
INTERNAL_NAMES = [CONTROL, "amq.direct", "amq.topic", "amq.fanout", "amq.gen-abc", "amq.",
                  "", "x" * 300, "x" * 65, "chatire", "chatire.control", "/", ".", "#", "*",
                  "a b", "_control ", " _control", "_CONTROL", "..", "a/b"]


def hostile_names() -> st.SearchStrategy[str]:
    """A ``chat`` field's worth of anything that is not a chat the server issued."""
    return st.one_of(
        st.sampled_from(INTERNAL_NAMES),
        st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),  # well-formed, but never issued
        st.from_regex(r"\Aamq\.[ -~]{0,40}\Z"),
        st.text(min_size=250, max_size=300),
        hostile_text(max_size=70),
    )


#: What the server issues as a chat uri (PROTOCOL.md, Abuse limits: Names).
ISSUED_FORM = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")


def name_refusals(value: Any) -> set[str]:
    """The error codes a frame naming ``value`` as its chat may get (none issued it).

    A name of the issued form is ``not_found``; one that cannot be a uri at all (empty,
    too long, other characters, bad text) is ``not_found`` too, or ``invalid`` as a
    frame that fails its schema; not a string: ``invalid``.
    """
    if not isinstance(value, str):
        return {"invalid"}
    if ISSUED_FORM.match(value):
        return {"not_found"}
    return {"invalid", "not_found"}


# -- nesting ----------------------------------------------------------------------------------

MAX_DEPTH = 32  # PROTOCOL.md: deeper JSON is 400 invalid / an invalid error frame


def depth(value: Any) -> int:
    """Nesting levels of a JSON value: a scalar 0, ``[]`` and ``{}`` 1, ``[[]]`` 2."""
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def nested(levels: list[bool], leaf: Any = 1) -> Any:
    """``leaf`` inside one array (True) or object (False) per entry of ``levels``."""
    value = leaf
    for is_array in reversed(levels):
        value = [value] if is_array else {"n": value}
    return value


def nestings(max_depth: int = 200) -> st.SearchStrategy[Any]:
    """Arrays and objects inside each other, 0 to ``max_depth`` levels."""
    leaves = st.one_of(st.none(), st.integers(), st.text(max_size=5))
    levels = st.integers(0, max_depth).flatmap(
        lambda n: st.lists(st.booleans(), min_size=n, max_size=n))  # depths spread evenly
    return st.builds(nested, levels, leaves)


def deep_json(levels: int) -> bytes:
    """A JSON object ``{"pad": [[...]]}`` of ``levels`` levels, too deep for a recursive parser."""
    return b'{"pad": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


# -- the request bodies of the API --------------------------------------------------------------


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _is_text(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    if "anyOf" in schema:
        return any(_is_text(s) for s in schema["anyOf"])
    return kinds == "string" or (isinstance(kinds, list) and "string" in kinds)


def api_text_fields() -> Iterator[tuple[str, str, str, list[str]]]:
    """(method, path, field, required fields) for every text field of every request body."""
    doc = openapi.build()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            schema = _resolve(doc, body["content"]["application/json"]["schema"])
            for field, prop in schema.get("properties", {}).items():
                if _is_text(_resolve(doc, prop)):
                    yield method.upper(), path, field, list(schema.get("required", []))


def frame_text_fields() -> Iterator[tuple[str, str]]:
    """(frame type, field) for every text field of every client frame but ``type``."""
    for kind, schema in FRAMES.items():
        for field, prop in schema.get("properties", {}).items():
            if field != "type" and _is_text(prop):
                yield kind, field
