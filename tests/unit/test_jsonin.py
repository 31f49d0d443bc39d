"""JSON input: UTF-8 only, and nesting past MAX_DEPTH refused without recursing."""

from __future__ import annotations

import sys

import pytest

from chatire.errors import Invalid
from chatire.jsonin import MAX_DEPTH, loads


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def test_plain_json_parses_from_bytes_and_text() -> None:
    assert loads(b'{"a": [1, "x"]}') == {"a": [1, "x"]}
    assert loads('{"a": "\u00e9"}') == {"a": "\u00e9"}
    assert loads("\u00e9".join(['"', '"']).encode()) == "\u00e9"


def test_nesting_up_to_the_limit_parses() -> None:
    assert loads(nested(MAX_DEPTH)) is not None
    deep_objects = '{"a":' * MAX_DEPTH + "1" + "}" * MAX_DEPTH
    assert loads(deep_objects.encode()) is not None


@pytest.mark.parametrize("text", [
    nested(MAX_DEPTH + 1),
    '{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1),
    "[{" * 17 + "}]" * 17,
])
def test_nesting_past_the_limit_is_invalid(text: str) -> None:
    with pytest.raises(Invalid, match="deeper than 32"):
        loads(text.encode())


def test_far_past_the_recursion_limit_is_invalid_not_a_recursion_error() -> None:
    depth = sys.getrecursionlimit() * 50
    with pytest.raises(Invalid):
        loads(b"[" * depth + b"]" * depth)
    with pytest.raises(Invalid):
        loads(b"[" * depth)  # not even closed


def test_brackets_inside_strings_do_not_count() -> None:
    text = '["' + "[" * 100 + '", "\\"[[[[", "{' + "{" * 100 + '"]'
    value = loads(text.encode())
    assert value[0] == "[" * 100 and value[1] == '"[[[['


def test_many_shallow_arrays_are_fine() -> None:
    text = "[" + ",".join(["[[1]]"] * 5000) + "]"
    assert len(loads(text.encode())) == 5000


@pytest.mark.parametrize("raw", [
    b"\xff{}", b'{"a": "\xc3"}', b'"\xed\xa0\x80"',  # bad UTF-8; a surrogate encoded
    b"", b"{", b"nope", b'{"a": 1,}',
])
def test_not_json_in_utf8_is_invalid(raw: bytes) -> None:
    with pytest.raises(Invalid):
        loads(raw)
