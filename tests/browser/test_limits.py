"""The UI takes its limits from the daemon (GET /api/config), not from constants."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Daemon
from tests.browser.test_ui import sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """This module's daemon: messages of at most 500 characters."""
    server = Daemon(tmp_path_factory.mktemp("chatire-limits"), "--send-rate", "0",
                    "--max-message-chars", "500")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_composer_takes_the_daemons_message_limit(
        new_page: Callable[..., Page], daemon: Daemon) -> None:
    token = daemon.user("erin", "Erin")
    chat = daemon.call("POST", "/api/chats", {"title": "Short notes"}, token)["chat"]
    page = new_page()
    page.goto(f"/c/{chat['uri']}")
    sign_in(page, "erin")
    expect(page.get_by_role("heading", name="Short notes")).to_be_visible()
    box = page.get_by_label("Message", exact=True)
    send_button = page.get_by_role("button", name="Send")
    expect(page.get_by_text("0 / 500")).to_be_visible()

    # The user's message at the limit goes through.
    box.fill("y" * 500)
    expect(page.get_by_text("500 / 500")).to_be_visible()
    expect(send_button).to_be_enabled()
    send_button.click()
    expect(page.get_by_role("log").get_by_text("y" * 500, exact=True)).to_have_count(1)

    # A 501st character is refused: typed at the end, typed in the middle, or pasted.
    box.fill("x" * 500)
    box.press("End")
    box.press_sequentially("z")
    assert box.input_value() == "x" * 500
    box.press("Home")
    box.press_sequentially("z")
    assert box.input_value() == "x" * 500
    box.fill("x" * 499 + "abc")
    assert box.input_value() == "x" * 499 + "a"
    expect(page.get_by_text("500 / 500")).to_be_visible()
    expect(send_button).to_be_enabled()
    # Counted as the server counts: code points after stripping white space.
    box.fill("  " + "\U0001f600" * 501 + "  ")
    assert box.input_value() == "  " + "\U0001f600" * 500
    expect(page.get_by_text("500 / 500")).to_be_visible()
    assert "4000" not in page.get_by_role("main").inner_text()

    # The title field keeps to the daemon's title_chars the same way.
    page.get_by_role("button", name="New chat").click()
    title = page.get_by_label("Title")
    title.fill("t" * 201)
    assert title.input_value() == "t" * 200
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="t" * 200)).to_be_visible()
