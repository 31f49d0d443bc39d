"""The project's JSON: clients' (frames, HTTP bodies) parsed with a nesting limit, ours encoded."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from chatire.errors import Invalid

#: Deepest nesting of arrays and objects a client may send (PROTOCOL.md, Abuse limits).
MAX_DEPTH = 32

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def encode(body: Any) -> bytes:
    """One JSON document as the daemon sends it (frames, bus events, HTTP): compact UTF-8."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(raw: bytes | str) -> Any:
    """Parse one JSON document; Invalid if it is not UTF-8 JSON or nests past MAX_DEPTH."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("not valid UTF-8") from None
    else:
        text = raw
    # Fewer brackets than the limit cannot nest past it: the common case costs two counts.
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(text)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise Invalid("not valid JSON") from None


def _check_depth(text: str) -> None:
    """Invalid if brackets outside strings nest deeper than MAX_DEPTH (no recursion)."""
    outside = _STRING.sub("", text)
    if outside.count("[") + outside.count("{") <= MAX_DEPTH:
        return
    brackets = _NOT_BRACKET.sub("", outside)
    # The running depth, summed in C: O(n) whatever the shape.
    if max(accumulate(map(_STEP.__getitem__, brackets))) > MAX_DEPTH:
        raise Invalid(f"JSON nested deeper than {MAX_DEPTH} levels")
