"""chatire.jsonin: client JSON with a nesting limit; every bad input is Invalid."""

from __future__ import annotations

import pytest

from chatire.errors import Invalid
from chatire.jsonin import MAX_DEPTH, loads


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_parses() -> None:
    value = loads(nested(MAX_DEPTH))
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == []
    assert loads('{"a":' * (MAX_DEPTH - 1) + "[]" + "}" * (MAX_DEPTH - 1))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 1_000_000])
def test_nesting_past_the_limit_is_invalid_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(Invalid, match="deeper than 32"):
        loads(nested(depth))
    with pytest.raises(Invalid):
        loads(b'{"x":' * depth)  # unclosed as well


def test_brackets_in_strings_do_not_count() -> None:
    text = '{"message": "' + "[{" * 100 + '\\"]' + '", "type": "send"}'
    assert loads(text)["message"].startswith("[{[{")
    assert loads(text.encode()) == loads(text)


@pytest.mark.parametrize("raw", [b"\xff", b"", "{", "[1,]", b'{"a": NaN'])
def test_bad_input_is_invalid(raw: bytes | str) -> None:
    with pytest.raises(Invalid):
        loads(raw)


def test_plain_json_parses_from_bytes_and_text() -> None:
    assert loads(b'{"a": [1, "x"]}') == {"a": [1, "x"]}
    assert loads('{"a": "\u00e9"}') == {"a": "\u00e9"}


def test_many_shallow_arrays_are_fine() -> None:
    text = "[" + ",".join(["[[1]]"] * 5000) + "]"  # many brackets, little depth
    assert len(loads(text.encode())) == 5000
