"""Unread counts arrive live: a background chat's badge moves within a second of a post, and
the chat list is never polled (only asked for again after a reconnect)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import Daemon
from tests.browser.test_timeline import People, badge_link, chat, log, msg, post
from tests.browser.test_ui import connection

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def people(daemon: Daemon) -> People:
    return People(ann=daemon.user("ann", "Ann Lee"), ben=daemon.user("ben", "Ben Ode"),
                  cy=daemon.user("cy", "Cy Young"))


def is_list(request: Request) -> bool:
    """GET /api/chats (the chat list), not a chat's own calls."""
    return request.method == "GET" and urlparse(request.url).path == "/api/chats"


def test_a_background_badge_moves_within_a_second_and_nothing_polls(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    front = chat(daemon, "Front room", people.ann, people.ben, people.cy)
    books = chat(daemon, "Books", people.ann, people.ben)
    films = chat(daemon, "Films", people.ann, people.cy)
    post(daemon, books, people.ben, "an old one")

    page = new_page()
    page.clock.install()  # the page's timers: a minute can pass in a moment
    page.add_init_script(f"sessionStorage.setItem('chatire.token', {json.dumps(people.ann)})")
    sockets: list[Any] = []

    def route(ws: Any) -> None:
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/ws$"), route)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if is_list(r) else None)
    page.goto(f"/c/{front}")
    expect(connection(page)).to_have_text("Live")
    expect(page.locator(".chat-name")).to_have_text("Front room")
    expect(badge_link(page, "Books")).to_have_accessible_name(re.compile(", 1 unread"))
    expect(badge_link(page, "Films")).not_to_contain_text("unread")
    settled = len(asked)
    assert settled >= 1

    # A minute of the page's time passes: the old client asked every 15 s, this one never.
    page.clock.run_for(60_000)
    page.wait_for_timeout(300)  # a request the minute started would be on its way by now
    assert asked[settled:] == []

    # Ben and Cy write in chats Ann does not have open: each badge moves within a second.
    for where, who, text, name, count in ((books, people.ben, "chapter two?", "Books", 2),
                                          (films, people.cy, "popcorn", "Films", 1),
                                          (books, people.ben, "or three", "Books", 3)):
        post(daemon, where, who, text)  # returns once the message is stored
        expect(badge_link(page, name)).to_have_accessible_name(
            re.compile(f", {count} unread"), timeout=1000)
    # The preview moved too, and the list is in order of activity, all without asking.
    expect(badge_link(page, "Books")).to_contain_text("Ben Ode: or three")
    titles = page.get_by_role("navigation", name="Chats").locator(".chat-title")
    expect(titles).to_have_text(["Books", "Films", "Front room"])
    page.clock.run_for(60_000)
    page.wait_for_timeout(300)
    assert asked[settled:] == []

    # A message in the open chat makes no badge and asks for nothing either.
    post(daemon, front, people.cy, "here too")
    expect(msg(page, "here too")).to_be_visible()
    expect(badge_link(page, "Front room")).not_to_contain_text("unread")
    assert asked[settled:] == []

    # After a reconnect the list is asked for once (counts may have moved meanwhile).
    for ws in sockets:
        ws.close()
    expect(connection(page)).not_to_have_text("Live")
    page.clock.run_for(31_000)  # past the longest first backoff wait
    expect(connection(page)).to_have_text("Live")
    deadline = time.monotonic() + 5
    while len(asked) == settled and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(asked) == settled + 1, asked[settled:]
    expect(log(page).get_by_text("here too")).to_have_count(1)
