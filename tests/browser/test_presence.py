"""Presence in the browser: online dots, "last seen", "N here", direct chats' dots, all live."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from chatire.testing import QUOTAS_OFF
from tests.browser.conftest import Daemon
from tests.browser.test_timeline import People, chat, open_chat, session
from tests.browser.test_ui import connection

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    # A one-second grace: a closed tab counts as offline soon (15 s by default).
    server = Daemon(tmp_path_factory.mktemp("chatire-presence"), "--send-rate", "0",
                    "--presence-grace", "1", *QUOTAS_OFF)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def people(daemon: Daemon) -> People:
    return People(ann=daemon.user("ann", "Ann Lee"), ben=daemon.user("ben", "Ben Ode"),
                  cy=daemon.user("cy", "Cy Young"))


def here(page: Page) -> Locator:
    return page.locator(".chat-here")


def member(page: Page, name: str) -> Locator:
    return page.get_by_role("complementary", name="Chat details").get_by_role(
        "listitem").filter(has_text=name)


def seen(page: Page, name: str) -> Locator:
    return member(page, name).locator(".member-seen")


def dot(page: Page, name: str) -> Locator:
    return member(page, name).locator(".presence-dot")


def online(daemon: Daemon, uri: str, who: str) -> dict[str, bool]:
    """Who the server counts online in the chat, by username."""
    members = daemon.call("GET", f"/api/chats/{uri}", token=who)["members"]
    return {m["username"]: m["online"] for m in members}


def chat_link(page: Page, name: str) -> Locator:
    exact = re.compile("^" + re.escape(name) + "$")
    return page.get_by_role("navigation", name="Chats").get_by_role("link").filter(
        has=page.locator(".chat-title", has_text=exact))


def test_dots_last_seen_and_the_here_count_follow_presence_live(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Who is here", people.ann, people.ben, people.cy)
    # Ben is in first; Ann's tab learns it from its `subscribed` frame (no change to hear of).
    ben = open_chat(new_page, people.ben, uri)
    ann = open_chat(new_page, people.ann, uri)
    expect(here(ann)).to_have_text("2 here")
    expect(seen(ann, "Ben Ode")).to_have_text("online")
    expect(dot(ann, "Ben Ode")).to_have_class(re.compile(r"\bonline\b"))
    expect(seen(ann, "Cy Young")).to_have_text("offline")  # never seen yet
    expect(dot(ann, "Cy Young")).not_to_have_class(re.compile(r"\bonline\b"))
    # Ben hears of Ann through a presence frame.
    expect(here(ben)).to_have_text("2 here")
    expect(seen(ben, "Ann Lee")).to_have_text("online")

    # Cy comes (on the home page: his tab follows every chat of his list) and goes.
    cy = session(new_page, people.cy, "/")
    for page in (ann, ben):
        expect(here(page)).to_have_text("3 here")
        expect(seen(page, "Cy Young")).to_have_text("online")
    cy.close()
    for page in (ann, ben):
        expect(here(page)).to_have_text("2 here", timeout=5000)
        expect(seen(page, "Cy Young")).to_have_text("last seen just now")
        expect(dot(page, "Cy Young")).not_to_have_class(re.compile(r"\bonline\b"))

    # The server kept when: a fresh tab shows "last seen", not "offline".
    fresh = open_chat(new_page, people.ben, uri)
    expect(seen(fresh, "Cy Young")).to_have_text(re.compile("^last seen "))
    assert online(daemon, uri, people.ann) == {"ann": True, "ben": True, "cy": False}


def test_a_direct_chat_shows_the_other_persons_presence_in_the_list(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    direct = daemon.call("POST", "/api/direct", {"username": "cy"}, people.ben)["chat"]["uri"]
    daemon.call("POST", f"/api/chats/{direct}/messages", {"message": "hello Cy"}, people.ben)
    cy = session(new_page, people.cy, "/")
    link = chat_link(cy, "Ben Ode")
    expect(link).to_be_visible()
    expect(link.locator(".presence-dot")).not_to_have_class(re.compile(r"\bonline\b"))

    ben = session(new_page, people.ben, "/")
    expect(chat_link(ben, "Cy Young").locator(".presence-dot")).to_have_class(
        re.compile(r"\bonline\b"))
    expect(link.locator(".presence-dot")).to_have_class(re.compile(r"\bonline\b"))
    expect(link).to_have_accessible_name(re.compile(r"^Ben Ode\s*online"))
    # Inside the chat, the header says it in words.
    link.click()
    expect(cy.locator(".chat-name")).to_have_text("Ben Ode")
    expect(here(cy)).to_have_text("online")

    ben.close()
    expect(here(cy)).to_have_text("last seen just now", timeout=5000)
    expect(link.locator(".presence-dot")).not_to_have_class(re.compile(r"\bonline\b"))
    expect(link.locator(".chat-seen")).to_have_text("seen just now")
    expect(link).to_have_accessible_name(re.compile(r"^Ben Ode\s*seen just now"))


def test_after_a_reconnect_the_subscribed_list_tells_who_went_away(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Comings and goings", people.ann, people.ben, people.cy)
    ann = new_page()
    ann.add_init_script(f"sessionStorage.setItem('chatire.token', {json.dumps(people.ann)})")
    # Ann's socket goes through the test: while `blocked`, it is cut and cannot come back.
    blocked = False
    sockets: list[Any] = []

    def route(ws: Any) -> None:
        if blocked:
            ws.close()
        else:
            ws.connect_to_server()
            sockets.append(ws)

    ann.route_web_socket(re.compile(r"/ws$"), route)
    cy = open_chat(new_page, people.cy, uri)
    ann.goto(f"/c/{uri}")
    expect(here(ann)).to_have_text("2 here")
    expect(seen(ann, "Cy Young")).to_have_text("online")

    # Cy leaves while Ann is cut off: no presence frame can reach her...
    blocked = True
    for ws in sockets:
        ws.close()
    expect(connection(ann)).not_to_have_text("Live")
    cy.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and online(daemon, uri, people.ann)["cy"]:
        time.sleep(0.2)
    assert not online(daemon, uri, people.ann)["cy"]
    # ...so the `subscribed` frame of her reconnect says it.
    blocked = False
    expect(connection(ann)).to_have_text("Live", timeout=30_000)  # after its backoff
    expect(here(ann)).to_have_text("1 here")
    expect(seen(ann, "Cy Young")).to_have_text("last seen just now")
