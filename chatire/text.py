"""The text rules of PROTOCOL.md: which characters a message, a name or another string may hold."""

from __future__ import annotations

import re
from enum import Enum

from chatire.errors import Invalid


class Text(Enum):
    """The kinds of string field, each with its rule."""

    #: a message: no lone surrogate, no C0 control character but tab and newline
    MESSAGE = "message"
    #: a username, display name or title: no C0 control, no bidirectional control
    NAME = "name"
    #: every other string (password, client_id, token, chat uri, ...): no C0 control
    PLAIN = "plain"


#: Character classes (regex source, ASCII escapes) of what each kind refuses, lone
#: surrogates aside; the OpenAPI document spells them as patterns.
REFUSED = {
    Text.MESSAGE: "\\x00-\\x08\\x0b-\\x1f",
    Text.NAME: "\\x00-\\x1f\\u202a-\\u202e\\u2066-\\u2069",
    Text.PLAIN: "\\x00-\\x1f",
}
_SURROGATES = "\\ud800-\\udfff"
_BAD = {kind: re.compile(f"[{chars}{_SURROGATES}]").search for kind, chars in REFUSED.items()}


def problem(value: str, kind: Text) -> str | None:
    """Why ``value`` breaks the rule of its kind, or None if it keeps it."""
    # Printable text (the common case, checked in C) holds no control character,
    # surrogate or bidirectional control; only the rest needs the search.
    if value.isprintable() or (kind is Text.MESSAGE and value.replace(
            "\n", " ").replace("\t", " ").isprintable()):
        return None
    bad = _BAD[kind](value)
    if bad is None:
        return None
    char = bad.group()
    if "\ud800" <= char <= "\udfff":
        return "must be valid Unicode (it holds a lone surrogate)"
    if char < " ":
        allowed = " other than tab and newline" if kind is Text.MESSAGE else ""
        return f"must not hold control characters{allowed} (U+{ord(char):04X})"
    return f"must not hold bidirectional control characters (U+{ord(char):04X})"


def check(field: str, value: str, kind: Text) -> str:
    """``value`` if it keeps the rule of its kind; Invalid naming the field otherwise."""
    why = problem(value, kind)
    if why is not None:
        raise Invalid(f"{field}: {why}")
    return value
