"""schemas.quick_check: never a yes where jsonschema says no; a yes for ordinary frames."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatire.schemas import _quick, _validators, quick_check

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
    assert quick_check({"type": "string", "enum": ["a"]}) is None
