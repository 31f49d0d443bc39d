"""The browser UI end to end: real daemon, headless chromium, two people in two contexts."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Daemon

pytestmark = pytest.mark.browser

PASSWORD = "correct horse"


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_up(page: Page, username: str, display_name: str, password: str = PASSWORD) -> None:
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Display name").fill(display_name)
    page.get_by_role("button", name="Sign up").click()


def send(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def connection(page: Page) -> Any:
    return page.get_by_role("status", name="Connection")


def seqs(page: Page) -> list[int]:
    """The seq of every confirmed message in the log, in screen order."""
    items = page.get_by_role("log").get_by_role("listitem")
    return [int(s) for s in items.evaluate_all(
        "items => items.filter(i => i.dataset.seq).map(i => i.dataset.seq)")]


def test_auth_errors_are_inline(new_page: Callable[..., Page], daemon: Daemon) -> None:
    daemon.user("taken", "Taken")
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, "nobody", "wrong password")
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Username").fill("taken")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 8 characters")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert")).to_contain_text("taken")
    assert dialogs == []


def test_invite_live_chat_history_and_reconnect(
        new_page: Callable[..., Page], daemon: Daemon, tmp_path: Path) -> None:
    # Alice signs up and starts a chat.
    alice = new_page()
    alice.goto("/")
    sign_up(alice, "alice", "Alice Liddell")
    expect(connection(alice)).to_have_text("Live")
    expect(alice.get_by_role("navigation", name="Chats")).to_contain_text("No chats yet")
    alice.get_by_role("button", name="New chat").click()
    alice.get_by_role("dialog").get_by_label("Title").fill("Tea party")
    alice.get_by_role("button", name="Create").click()
    expect(alice.get_by_role("heading", name="Tea party")).to_be_visible()
    expect(alice).to_have_url(re.compile(r"/c/[A-Za-z0-9_-]{16,}$"))
    link = alice.get_by_label("Invite link").input_value()
    assert link == alice.url
    alice.get_by_role("button", name="Copy invite link").click()
    expect(alice.get_by_text(re.compile("Invite link copied|Press Ctrl\\+C"))).to_be_visible()
    assert alice.context.cookies() == []  # the token lives in sessionStorage, not a cookie
    send(alice, "Hello! Is anyone here?")
    log_a = alice.get_by_role("log")
    expect(log_a.get_by_text("Hello! Is anyone here?", exact=True)).to_have_count(1)
    expect(log_a.get_by_text("Sending…")).to_have_count(0)

    # Bob opens the invite link signed out, signs in and lands in the chat, joined.
    bob_token = daemon.user("bob", "Bob")
    bob = new_page()
    bob.goto(link)
    expect(bob.get_by_text("join the chat you were invited to")).to_be_visible()
    sign_in(bob, "bob")
    expect(bob).to_have_url(link)
    expect(bob.get_by_role("heading", name="Tea party")).to_be_visible()
    log_b = bob.get_by_role("log")
    expect(log_b.get_by_text("Hello! Is anyone here?", exact=True)).to_have_count(1)
    expect(bob.get_by_role("complementary", name="Chat details")).to_contain_text("Alice Liddell")
    expect(connection(bob)).to_have_text("Live")

    # Live both ways, with the typing indicator and Shift+Enter line breaks.
    box_b = bob.get_by_label("Message", exact=True)
    box_b.press_sequentially("Hi Alice")
    expect(alice.get_by_text("Bob is typing…")).to_be_visible()
    box_b.press("Shift+Enter")
    box_b.press_sequentially("Tea, anyone?")
    box_b.press("Enter")
    expect(log_a.get_by_text("Hi Alice\nTea, anyone?", exact=True)).to_have_count(1)
    expect(alice.get_by_text("Bob is typing…")).to_have_count(0)
    expect(alice.get_by_role("complementary", name="Chat details")).to_contain_text("Bob")
    send(alice, "Always! Milk or lemon?")
    expect(log_b.get_by_text("Always! Milk or lemon?", exact=True)).to_have_count(1)
    send(bob, "Lemon, please. And a very long word: " + "supercalifragilistic" * 8)
    expect(log_a.get_by_text(re.compile("^Lemon, please"))).to_have_count(1)
    box_b.press_sequentially("Coming")
    expect(alice.get_by_text("Bob is typing…")).to_be_visible()
    # `make docs` sets CHATIRE_SCREENSHOT to docs/screenshot.png; tests write only to tmp.
    alice.screenshot(path=os.environ.get("CHATIRE_SCREENSHOT") or str(tmp_path / "chat.png"))
    box_b.fill("")

    # A reload keeps the session (sessionStorage) and shows the history.
    bob.reload()
    expect(log_b.get_by_text("Hi Alice\nTea, anyone?", exact=True)).to_have_count(1)
    expect(log_b.get_by_text("Always! Milk or lemon?", exact=True)).to_have_count(1)
    expect(connection(bob)).to_have_text("Live")

    # The daemon goes away and comes back: Bob's queued send and an HTTP post made right
    # after the restart both reach Alice exactly once, in order, after her socket resumes.
    daemon.stop()
    expect(connection(alice)).to_have_text(re.compile("Reconnecting|Connecting"))
    send(bob, "Sent while the server was down")
    expect(log_b.get_by_text("Sending…")).to_be_visible()
    daemon.start()
    uri = link.rsplit("/", 1)[1]
    daemon.call("POST", f"/api/chats/{uri}/messages",
                {"message": "Posted right after the restart", "client_id": "b-http-1"}, bob_token)
    expect(connection(alice)).to_have_text("Live", timeout=30_000)
    for text in ("Sent while the server was down", "Posted right after the restart"):
        expect(log_a.get_by_text(text, exact=True)).to_have_count(1, timeout=15_000)
        expect(log_b.get_by_text(text, exact=True)).to_have_count(1, timeout=15_000)
    expect(log_b.get_by_text("Sending…")).to_have_count(0)
    history = daemon.call("GET", f"/api/chats/{uri}/messages", token=bob_token)["messages"]
    assert [m["message"] for m in history].count("Sent while the server was down") == 1
    assert seqs(alice) == [m["seq"] for m in history]
    assert seqs(bob) == seqs(alice)
    # The messages' seqs skip Bob's join (an event); the timeline has no gap.
    timeline = daemon.call("GET", f"/api/chats/{uri}/events", token=bob_token)["events"]
    assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1))
    assert [e["kind"] for e in timeline].count("join") == 1

    # While Alice's window is not focused, the title counts what she has not seen.
    alice.evaluate("() => { document.hasFocus = () => false; dispatchEvent(new Event('blur')); }")
    send(bob, "Are you still there?")
    expect(alice).to_have_title("(1) chatire")
    alice.evaluate("() => { delete document.hasFocus; dispatchEvent(new Event('focus')); }")
    expect(alice).to_have_title("chatire")

    # Signing out revokes the token and returns to the sign-in screen.
    bob.get_by_role("button", name="Sign out").click()
    expect(bob.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(bob).to_have_url(re.compile(r"/$"))
    assert bob.evaluate("sessionStorage.length") == 0


def test_older_history_unread_counts_and_limit(
        new_page: Callable[..., Page], daemon: Daemon) -> None:
    carol = daemon.user("carol", "Carol")
    daemon.user("dave", "Dave")
    busy = daemon.call("POST", "/api/chats", {"title": "Busy room"}, carol)["chat"]
    quiet = daemon.call("POST", "/api/chats", {"title": "Quiet room"}, carol)["chat"]
    for i in range(1, 81):
        daemon.call("POST", f"/api/chats/{busy['uri']}/messages",
                    {"message": f"history {i}"}, carol)

    page = new_page(width=1280, height=700)
    page.goto(f"/c/{quiet['uri']}")
    sign_in(page, "dave")
    expect(page.get_by_role("heading", name="Quiet room")).to_be_visible()
    page.goto(f"/c/{busy['uri']}")
    log = page.get_by_role("log")
    expect(log.get_by_text("history 80", exact=True)).to_be_visible()
    expect(log.get_by_text("history 31", exact=True)).to_have_count(1)
    expect(log.get_by_text("history 30", exact=True)).to_have_count(0)
    # Scrolling to the top loads the older page, in place and in order.
    log.get_by_role("listitem").first.scroll_into_view_if_needed()
    page.mouse.wheel(0, -5000)
    expect(log.get_by_text("history 1", exact=True)).to_have_count(1)
    expect(page.get_by_text("This is the beginning of the chat.")).to_be_visible()
    assert seqs(page) == list(range(1, 81))

    # Other chats: unread counts come from GET /api/chats (refreshed on focus).
    for text in ("ping", "pong"):
        daemon.call("POST", f"/api/chats/{quiet['uri']}/messages", {"message": text}, carol)
    page.evaluate("dispatchEvent(new Event('focus'))")
    chats = page.get_by_role("navigation", name="Chats")
    expect(chats.get_by_role("link", name=re.compile(r"Quiet room.*2 unread"))).to_be_visible()
    expect(chats.get_by_role("link").first).to_contain_text("Quiet room")  # latest activity first
    chats.get_by_role("link", name=re.compile("Quiet room")).click()
    expect(page.get_by_role("log").get_by_text("pong", exact=True)).to_be_visible()
    expect(chats.get_by_role("link", name=re.compile("unread"))).to_have_count(0)

    # The daemon's 4000-character limit is shown and kept; text is trimmed like the server.
    box = page.get_by_label("Message", exact=True)
    send_button = page.get_by_role("button", name="Send")
    box.fill("x" * 4001)
    expect(page.get_by_text("4000 / 4000")).to_be_visible()
    assert len(box.input_value()) == 4000
    box.fill("   " + "x" * 4000 + "\n  ")
    expect(send_button).to_be_enabled()
    box.fill("\U0001f600" * 4000)  # counted in code points, as the server counts
    expect(page.get_by_text("4000 / 4000")).to_be_visible()
    expect(send_button).to_be_enabled()
    box.fill("   <b>not bold</b>   ")
    send_button.click()
    sent = page.get_by_role("log").get_by_text("<b>not bold</b>", exact=True)
    expect(sent).to_have_count(1)
    assert page.get_by_role("log").locator("b").count() == 0

    # A link to a chat that does not exist says so.
    page.goto("/c/no-such-chat-0000000000")
    expect(page.get_by_text("This chat does not exist.")).to_be_visible()
    expect(page.get_by_role("link", name="Back to my chats")).to_be_visible()


def test_the_chat_list_loads_more_chats_as_it_scrolls(
        new_page: Callable[..., Page], daemon: Daemon) -> None:
    token = daemon.user("collector", "Collector")
    for i in range(120):  # more than two of the UI's pages of 50
        daemon.call("POST", "/api/chats", {"title": f"Chat {i:03d}"}, token)
    pages: list[str] = []
    page = new_page()
    page.on("request", lambda r: pages.append(r.url) if "/api/chats?" in r.url else None)
    page.goto("/")
    sign_in(page, "collector")
    nav = page.get_by_role("navigation", name="Chats")
    expect(nav.get_by_role("link", name="Chat 119")).to_be_visible()  # latest first
    items = nav.get_by_role("listitem")
    expect(items).to_have_count(50)  # one page, not all 120
    assert all("limit=50" in url for url in pages), pages
    for count in (100, 120):
        items.last.scroll_into_view_if_needed()
        expect(items).to_have_count(count)
    expect(nav.get_by_role("link", name="Chat 000")).to_be_visible()
    titles = items.evaluate_all(
        "items => items.map(i => i.querySelector('.chat-title').textContent)")
    assert titles == [f"Chat {i:03d}" for i in range(119, -1, -1)]
    expect(nav.get_by_text("Loading more chats")).to_be_hidden()
    assert any("cursor=" in url for url in pages)
    # A refresh (on focus, or after a reconnect) renews the first page and keeps the rest.
    asked = len(pages)
    with page.expect_response(lambda r: r.url.endswith("/api/chats?limit=50")):
        page.evaluate("window.dispatchEvent(new Event('focus'))")
    page.wait_for_timeout(500)  # let the reply be applied
    expect(items).to_have_count(120)
    assert len(pages) == asked + 1, pages[asked:]  # not shrunk to 50 and loaded again
    expect(nav.get_by_role("link", name="Chat 000")).to_be_visible()
