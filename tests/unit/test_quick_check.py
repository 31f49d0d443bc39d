"""schemas.quick_check: never a yes where jsonschema says no; a yes for ordinary frames."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatire.errors import Invalid
from chatire.schemas import _quick, _validators, quick_check, validate

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats(-2, 2, allow_nan=False)
    | st.text(max_size=3) | st.text(min_size=60, max_size=200),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=6,
)


def _values(name: str) -> st.SearchStrategy[Any]:
    """Objects with (some of) the schema's own keys, holding any JSON value."""
    keys = [*sorted(_validators[name].schema.get("properties", {})), "type", "other"]
    return st.dictionaries(st.sampled_from(keys), JSON, max_size=len(keys)) | JSON


@settings(max_examples=600, deadline=None, database=None)
@given(data=st.data())
def test_quick_yes_implies_jsonschema_yes(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(_validators)))
    value = data.draw(_values(name))
    quick = _quick[name]
    assert quick is not None
    if quick(value):
        assert _validators[name].is_valid(value), value


@pytest.mark.parametrize("frame", [
    {"type": "send", "chat": "c" * 24, "message": "hello", "client_id": "k1"},
    {"type": "send", "chat": "c" * 24, "message": "hello", "client_id": None},
    {"type": "subscribe", "chat": "c" * 24, "after": 12},
    {"type": "subscribe", "chat": "c" * 24, "after": None},
    {"type": "auth", "token": "t"},
])
def test_ordinary_frames_take_the_quick_path(frame: dict[str, Any]) -> None:
    quick = _quick[f"frame:{frame['type']}"]
    assert quick is not None and quick(frame)


def test_unknown_keywords_fall_back_to_jsonschema() -> None:
    assert quick_check({"type": "object", "additionalProperties": False}) is None
    assert quick_check({"$ref": "#/x"}) is None
    assert quick_check({"type": "string", "const": "a"}) is None


@pytest.mark.parametrize("message", ["hello", "two\nlines\tand a tab", "😀 中文 \u200d"])
def test_messages_that_keep_the_text_rules_take_the_quick_path(message: str) -> None:
    frame = {"type": "send", "chat": "c" * 24, "message": message, "client_id": "k1"}
    quick = _quick["frame:send"]
    assert quick is not None and quick(frame)


@pytest.mark.parametrize(("field", "value"), [
    ("message", "a\x00b"), ("message", "\ud800"), ("message", "a\rb"),
    ("client_id", "k\x07"), ("client_id", "\udfff"), ("chat", "c\x00"),
])
def test_bad_text_is_refused_with_the_field_named(field: str, value: str) -> None:
    frame = {"type": "send", "chat": "c" * 24, "message": "hi", "client_id": "k1", field: value}
    quick = _quick["frame:send"]
    assert quick is not None and not quick(frame)
    with pytest.raises(Invalid, match=f"^{field}: must "):
        validate("frame:send", frame)
