"""``@username`` mentions as the "mentions" level reads them, and settings updates."""

from __future__ import annotations

import pytest

from chatire.notify.mentions import mentions
from chatire.notify.settings import NotifySettings, Webhook


@pytest.mark.parametrize(("text", "expected"), [
    ("@bob hi", True),
    ("hi @Bob", True),
    ("hi @BOB.", True),  # the end of a sentence
    ("(@bob)", True),
    ("@bob, @carol", True),
    ("@bobby", False),
    ("@bob.smith", False),  # another username
    ("@bob_", False),
    ("@bob-x", False),
    ("mail bob@bob.example", False),
    ("x@bob", False),
    ("@@bob", False),
    ("bob", False),
    ("", False),
])
def test_a_mention_is_the_whole_name_in_any_case(text: str, expected: bool) -> None:
    assert mentions(text, "bob") is expected


def test_names_with_dots_and_hyphens_are_matched_literally() -> None:
    assert mentions("ping @a.b-c!", "a.b-c")
    assert not mentions("ping @aXb-c", "a.b-c")  # the dot is not a wildcard


def test_an_update_keeps_the_secret_unless_told() -> None:
    before = NotifySettings("all", 30, Webhook("https://x.example/", "s"), None)
    assert before.updated({"webhook": {"url": "https://y.example/"}}).webhook == Webhook(
        "https://y.example/", "s")
    assert before.updated({"webhook": {"url": "https://y.example/", "secret": None}}
                          ).webhook == Webhook("https://y.example/", None)
    assert before.updated({"level": "none"}).webhook == before.webhook
    assert before.updated({"webhook": None}).webhook is None
    assert before.to_json()["webhook"] == {"url": "https://x.example/", "secret": None,
                                           "has_secret": True}
