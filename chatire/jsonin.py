"""JSON input with a nesting limit: deep documents are refused before the parser recurses."""

from __future__ import annotations

import json
import re
from typing import Any

from chatire.errors import Invalid

#: Deepest nesting of arrays and objects accepted (PROTOCOL.md, Abuse limits).
MAX_DEPTH = 32

#: What the depth scan looks at: a whole string literal (skipped), or one bracket.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _too_deep(text: str) -> bool:
    """Whether brackets outside string literals nest deeper than MAX_DEPTH."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False  # the common case: too few brackets to be too deep
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in "]}":
            depth -= 1
    return False


def loads(raw: bytes | str) -> Any:
    """Parse UTF-8 JSON; Invalid if it is not JSON, not UTF-8 or nested past MAX_DEPTH."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("the body is not valid JSON in UTF-8") from None
    if _too_deep(raw):
        raise Invalid(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise Invalid("the body is not valid JSON in UTF-8") from None
