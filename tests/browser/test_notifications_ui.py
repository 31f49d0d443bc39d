"""Notifications in the browser: the panel, a chat's level, `@`, mentions, desktop notifications."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from playwright.sync_api import Locator, Page, expect

from chatire.testing import QUOTAS_OFF
from tests.browser.conftest import AXE, Daemon
from tests.browser.test_polish import AXE_RUN
from tests.browser.test_timeline import People, chat, log, msg, open_chat, post, session
from tests.browser.test_ui import connection
from tests.support.receiver import Receiver, settled

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    # Webhooks to 127.0.0.1 (the test's receiver) are allowed; no e-mail relay.
    server = Daemon(tmp_path_factory.mktemp("chatire-notify-ui"), "--send-rate", "0",
                    "--webhook-allow-private", *QUOTAS_OFF)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def people(daemon: Daemon) -> People:
    return People(ann=daemon.user("ann", "Ann Lee"), ben=daemon.user("ben", "Ben Ode"),
                  cy=daemon.user("cy", "Cy Young"))


@pytest_twisted.async_yield_fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = await Receiver().start()
    yield hook
    await hook.stop()


def settings_of(daemon: Daemon, who: str) -> dict[str, Any]:
    return dict(daemon.call("GET", "/api/me/notifications", token=who)["notifications"])


def level_of(daemon: Daemon, uri: str, who: str) -> str | None:
    level = daemon.call("GET", f"/api/chats/{uri}/notifications", token=who)["level"]
    return None if level is None else str(level)


def open_panel(page: Page) -> Locator:
    page.get_by_role("button", name="Notifications", exact=True).click()
    panel = page.get_by_role("dialog", name="Notifications")
    expect(panel).to_be_visible()
    expect(panel.get_by_role("button", name="Save")).to_be_visible()
    return panel


def details(page: Page) -> Locator:
    return page.get_by_role("complementary", name="Chat details")


def chat_level(page: Page) -> Locator:
    return details(page).get_by_role("combobox", name="Notifications")


def composer(page: Page) -> Locator:
    return page.get_by_label("Message", exact=True)


# -- the panel ---------------------------------------------------------------------------------

async def test_the_panel_sets_a_webhook_never_shows_its_secret_and_a_test_is_delivered(
        new_page: Callable[..., Page], daemon: Daemon, people: People,
        receiver: Receiver) -> None:
    hook_url = receiver.url
    page = session(new_page, people.ann, "/")
    panel = open_panel(page)
    expect(panel.get_by_label("E-mail address")).to_have_count(0)  # the daemon has no relay
    panel.get_by_label("Every new message").check()
    panel.get_by_label("When", exact=True).select_option(label="After 5 minutes")
    panel.get_by_label("Webhook URL").fill(hook_url)
    panel.get_by_label("Secret (optional)").fill("hunter2-the-secret")
    panel.get_by_role("button", name="Save").click()
    expect(panel.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    # The secret is not shown back: a note says one is set, no field holds it.
    expect(panel.get_by_text("A secret is set.")).to_be_visible()
    assert "hunter2" not in page.evaluate(
        "() => [...document.querySelectorAll('input')].map(i => i.value).join(' ')")
    saved = settings_of(daemon, people.ann)
    assert saved["level"] == "all" and saved["delay"] == 300
    assert saved["webhook"]["url"] == hook_url
    assert saved["webhook"]["secret"] is None and saved["webhook"]["has_secret"] is True

    # After a reload the panel shows what the server has.
    page.reload()
    panel = open_panel(page)
    expect(panel.get_by_label("Every new message")).to_be_checked()
    expect(panel.get_by_label("When", exact=True)).to_have_value("300")
    expect(panel.get_by_label("Webhook URL")).to_have_value(hook_url)
    expect(panel.get_by_text("A secret is set.")).to_be_visible()

    # "Send a test" reaches the receiver (signed with the secret) and says so. The receiver
    # lives in this process's reactor: it answers while the test awaits (the browser calls
    # block it).
    test = panel.get_by_role("button", name="Send a test")
    test.click()
    arrived = await receiver.wait_for(1)
    await settled()  # its answer goes out
    expect(panel.get_by_role("status").filter(has_text="Webhook: delivered (200)")).to_be_visible()
    assert len(arrived) == 1 and arrived[0].json["test"] is True
    assert arrived[0].signed_by("hunter2-the-secret")
    # With the receiver gone the test says it failed; pressed too often, the server's 429.
    await receiver.stop()
    said = []
    for _ in range(6):
        test.click()
        expect(test).to_be_enabled()
        said.append(panel.locator(".test-result").inner_text())
        if "Too many" in said[-1]:
            break
    assert any("Webhook: failed: connection refused" in line for line in said), said
    assert "Too many attempts. Try again in" in said[-1], said

    # Replace the secret, then remove it.
    panel.get_by_role("button", name="Replace secret").click()
    panel.get_by_label("New secret").fill("another-secret")
    panel.get_by_role("button", name="Save").click()
    expect(panel.get_by_text("A secret is set.")).to_be_visible()
    assert settings_of(daemon, people.ann)["webhook"]["has_secret"] is True
    panel.get_by_role("button", name="Remove secret").click()
    expect(panel.get_by_text("The secret will be removed when you save.")).to_be_visible()
    panel.get_by_role("button", name="Save").click()
    expect(panel.get_by_label("Secret (optional)")).to_have_value("")
    assert settings_of(daemon, people.ann)["webhook"]["has_secret"] is False
    assert settings_of(daemon, people.ann)["webhook"]["url"] == hook_url

    # Esc closes it; the focus is back on the button that opened it.
    page.keyboard.press("Escape")
    expect(panel).to_have_count(0)
    expect(page.get_by_role("button", name="Notifications", exact=True)).to_be_focused()


def test_a_bad_webhook_url_shows_the_servers_message(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    page = session(new_page, people.cy, "/")
    panel = open_panel(page)
    url = panel.get_by_label("Webhook URL")
    url.fill("ftp://example.com/hook")
    panel.get_by_role("button", name="Save").click()
    error = panel.get_by_role("alert")
    expect(error).not_to_be_empty()
    expected = put_error(daemon, people.cy, {"webhook": {"url": "ftp://example.com/hook"}})
    expect(error).to_have_text(expected)
    expect(url).to_have_attribute("aria-invalid", "true")
    assert settings_of(daemon, people.cy)["webhook"] is None
    # Fixed, it saves and the error goes.
    url.fill("")
    panel.get_by_role("button", name="Save").click()
    expect(panel.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    expect(error).to_be_empty()
    expect(url).not_to_have_attribute("aria-invalid", "true")


def test_the_email_address_is_offered_when_the_daemon_has_a_relay(
        new_page: Callable[..., Page], tmp_path: Path) -> None:
    # Nothing is sent here, so the relay need not answer; the daemon only has to have one.
    relayed = Daemon(tmp_path, "--smtp", "smtp://127.0.0.1:9", *QUOTAS_OFF)
    relayed.start()
    try:
        dee = relayed.user("dee", "Dee Ray")
        page = new_page()
        page.add_init_script(f"sessionStorage.setItem('chatire.token', {json.dumps(dee)})")
        page.goto(relayed.base_url + "/")
        expect(connection(page)).to_have_text("Live")
        panel = open_panel(page)
        email = panel.get_by_label("E-mail address")
        email.fill("dee@example.com")
        panel.get_by_role("button", name="Save").click()
        expect(panel.get_by_role("status").filter(has_text="Saved")).to_be_visible()
        assert settings_of(relayed, dee)["email"] == "dee@example.com"
        email.fill("not an address")
        panel.get_by_role("button", name="Save").click()
        expect(panel.get_by_role("alert")).to_have_text(
            put_error(relayed, dee, {"email": "not an address"}))
        expect(email).to_have_attribute("aria-invalid", "true")
        assert settings_of(relayed, dee)["email"] == "dee@example.com"
        # Emptied, it is gone.
        email.fill("")
        panel.get_by_role("button", name="Save").click()
        expect(panel.get_by_role("status").filter(has_text="Saved")).to_be_visible()
        assert settings_of(relayed, dee)["email"] is None
    finally:
        relayed.stop()


def put_error(daemon: Daemon, who: str, body: dict[str, Any]) -> str:
    """The message of the 400 that PUT /api/me/notifications answers to `body`."""
    request = urllib.request.Request(daemon.base_url + "/api/me/notifications",
                                     data=json.dumps(body).encode(), method="PUT")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {who}")
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as e:
        assert e.code == 400
        return str(json.loads(e.read())["error"]["message"])
    raise AssertionError("the bad URL was taken")


# -- a chat's level ----------------------------------------------------------------------------

def test_muting_a_chat_persists_across_a_reload(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Noisy", people.ben, people.ann)
    page = open_chat(new_page, people.ann, uri)
    level = chat_level(page)
    expect(level).to_be_enabled()
    expect(level).to_have_value("")  # my default
    expect(page.locator(".chat-head .muted-tag")).to_be_hidden()
    level.select_option(label="Mute")
    expect(page.locator(".chat-head").get_by_title("Muted")).to_be_visible()
    expect(details(page).get_by_role("status").filter(
        has_text="Nothing from this chat")).to_be_visible()
    assert level_of(daemon, uri, people.ann) == "none"

    page.reload()
    level = chat_level(page)
    expect(level).to_have_value("none")
    expect(page.locator(".chat-head").get_by_title("Muted")).to_be_visible()
    level.select_option(value="")  # "Default (mentions only)"
    expect(page.locator(".chat-head .muted-tag")).to_be_hidden()
    assert level_of(daemon, uri, people.ann) is None
    assert level_of(daemon, uri, people.ben) is None  # Ben's level there is his own


# -- `@` in the composer -----------------------------------------------------------------------

def test_at_offers_the_members_and_the_keyboard_picks_one(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Mention me", people.ann, people.ben, people.cy)
    page = open_chat(new_page, people.ann, uri)
    box = composer(page)
    listbox = page.get_by_role("listbox", name="Members to mention")
    expect(box).to_have_attribute("aria-expanded", "false")
    box.press_sequentially("hello @")
    expect(listbox).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    # Everyone but me; the first is active.
    expect(listbox.get_by_role("option")).to_have_count(2)
    expect(listbox.get_by_role("option", name="Ben Ode @ben")).to_have_attribute(
        "aria-selected", "true")
    box.press_sequentially("c")
    expect(listbox.get_by_role("option")).to_have_count(1)
    expect(listbox.get_by_role("option", name="Cy Young @cy")).to_be_visible()
    box.press("Backspace")  # both again; Cy stays the active one
    cy = listbox.get_by_role("option", name="Cy Young @cy")
    ben = listbox.get_by_role("option", name="Ben Ode @ben")
    expect(listbox.get_by_role("option")).to_have_count(2)
    expect(cy).to_have_attribute("aria-selected", "true")
    box.press("ArrowDown")  # wraps to the first
    expect(ben).to_have_attribute("aria-selected", "true")
    expect(cy).to_have_attribute("aria-selected", "false")
    box.press("ArrowDown")
    expect(cy).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", cy.get_attribute("id") or "")
    box.press("Enter")  # picks; does not send
    expect(box).to_have_value("hello @cy ")
    expect(listbox).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(log(page).locator("li.msg")).to_have_count(0)

    # Tab picks too (up wraps to the last); Esc closes and the text stays.
    box.press_sequentially("and @")
    box.press("ArrowUp")
    box.press("Tab")
    expect(box).to_have_value("hello @cy and @cy ")
    expect(box).to_be_focused()
    box.press_sequentially("@b")
    expect(listbox).to_be_visible()
    box.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_value("hello @cy and @cy @b")
    box.press_sequentially("e")  # the same @: still closed
    expect(listbox).to_be_hidden()
    # A click picks as well.
    box.press_sequentially(" @")
    listbox.get_by_role("option", name="Ben Ode @ben").click()
    expect(box).to_have_value("hello @cy and @cy @be @ben ")
    expect(box).to_be_focused()
    box.press("Enter")  # the list is closed: Enter sends
    expect(msg(page, "hello @cy and @cy @be @ben")).to_have_attribute(
        "data-seq", re.compile(r"\d+"))
    # Not after a word: an e-mail address offers nobody.
    box.press_sequentially("mail x@b")
    expect(listbox).to_be_hidden()


# -- mentions of me ----------------------------------------------------------------------------

def test_a_mention_of_me_is_highlighted_and_someone_elses_is_not(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Who is asked", people.ben, people.ann, people.cy)
    for text in ("hey @ANN. look", "for @ann.smith only", "mail x@ann now", "@cy over to you",
                 "see @ann"):
        post(daemon, uri, people.ben, text)
    page = open_chat(new_page, people.ann, uri)
    for text in ("hey @ANN. look", "see @ann"):
        message = msg(page, text)
        expect(message).to_have_class(re.compile(r"\bmention-me\b"))
        expect(message.locator("mark.mention")).to_have_count(1)
        expect(message.get_by_text("mentions you")).to_be_visible()
    expect(msg(page, "hey @ANN. look").locator("mark.mention")).to_have_text("@ANN")
    for text in ("for @ann.smith only", "mail x@ann now", "@cy over to you"):
        expect(msg(page, text)).not_to_have_class(re.compile(r"\bmention-me\b"))
        expect(msg(page, text).locator("mark")).to_have_count(0)
    # Not only colour: the marked name is bold and underlined.
    style = msg(page, "see @ann").locator("mark.mention").evaluate(
        "m => { const s = getComputedStyle(m); return [s.fontWeight, s.textDecorationLine]; }")
    assert int(style[0]) >= 700 and "underline" in style[1]

    # Cy sees his own mention marked, and Ann's not; a live message is marked as it comes.
    cy = open_chat(new_page, people.cy, uri)
    expect(msg(cy, "@cy over to you")).to_have_class(re.compile(r"\bmention-me\b"))
    expect(msg(cy, "see @ann")).not_to_have_class(re.compile(r"\bmention-me\b"))
    post(daemon, uri, people.ben, "live one for @Cy!")
    expect(msg(cy, "live one for @Cy!").locator("mark.mention")).to_have_text("@Cy")
    expect(msg(page, "live one for @Cy!")).to_be_visible()
    expect(msg(page, "live one for @Cy!")).not_to_have_class(re.compile(r"\bmention-me\b"))


# -- desktop notifications ---------------------------------------------------------------------

#: Record `new Notification(...)` and `Notification.requestPermission()`; let the test say
#: whether the document is hidden (the browser API is stubbed, not the server).
DESKTOP_STUB = """
(() => {
  const Real = window.Notification;
  window.__notes = [];
  window.__asked = 0;
  window.__hidden = false;
  class Recorded extends Real {
    constructor(title, options = {}) {
      window.__notes.push({title, body: options.body || '', tag: options.tag || ''});
      super(title, options);
    }
  }
  Object.defineProperty(Recorded, 'permission', {get: () => Real.permission});
  Recorded.requestPermission = (...args) => {
    window.__asked += 1;
    return Real.requestPermission(...args);
  };
  window.Notification = Recorded;
  Object.defineProperty(Document.prototype, 'hidden',
    {get: () => window.__hidden, configurable: true});
  Object.defineProperty(Document.prototype, 'visibilityState',
    {get: () => (window.__hidden ? 'hidden' : 'visible'), configurable: true});
})();
"""


def notes(page: Page) -> list[dict[str, str]]:
    return list(page.evaluate("() => window.__notes"))


def test_desktop_notifications_are_asked_for_on_a_click_and_follow_the_chats_level(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    by_default = chat(daemon, "Default level", people.ben, people.ann)
    every = chat(daemon, "Every message", people.ben, people.ann)
    quiet = chat(daemon, "Quiet please", people.ben, people.ann)
    daemon.call("PUT", "/api/me/notifications", {"level": "mentions"}, people.ann)
    daemon.call("PUT", f"/api/chats/{every}/notifications", {"level": "all"}, people.ann)
    daemon.call("PUT", f"/api/chats/{quiet}/notifications", {"level": "none"}, people.ann)

    page = new_page()
    page.context.grant_permissions(["notifications"])
    page.add_init_script(DESKTOP_STUB)
    page.add_init_script(f"sessionStorage.setItem('chatire.token', {json.dumps(people.ann)})")
    page.goto("/")
    expect(connection(page)).to_have_text("Live")
    post(daemon, every, people.ben, "before they are on")
    listed = page.get_by_role("navigation", name="Chats")
    expect(listed.get_by_text("Ben Ode: before they are on")).to_be_visible()
    page.evaluate("() => { window.__hidden = true; }")
    post(daemon, every, people.ben, "hidden, still off")
    expect(listed.get_by_text("Ben Ode: hidden, still off")).to_be_visible()
    page.evaluate("() => { window.__hidden = false; }")
    assert page.evaluate("() => window.__asked") == 0  # nothing asked without a click
    assert notes(page) == []

    panel = open_panel(page)
    assert page.evaluate("() => window.__asked") == 0
    panel.get_by_role("button", name="Enable desktop notifications").click()
    expect(panel.get_by_role("button", name="Turn off desktop notifications")).to_be_visible()
    assert page.evaluate("() => window.__asked") == 1
    page.keyboard.press("Escape")

    # Visible: no notification (the chat list and the sound do the job).
    post(daemon, every, people.ben, "while you look")
    expect(listed.get_by_text("Ben Ode: while you look")).to_be_visible()
    page.evaluate("() => { window.__hidden = true; }")
    for uri, text in ((quiet, "muted @ann"), (by_default, "not for you"),
                      (by_default, "for @ann"), (every, "for everyone")):
        post(daemon, uri, people.ben, text)
        expect(listed.get_by_text(f"Ben Ode: {text}")).to_be_visible()
    page.wait_for_function("() => window.__notes.length >= 2")
    page.wait_for_timeout(300)  # nothing more comes
    assert sorted((n["title"], n["body"]) for n in notes(page)) == [
        ("Default level", "Ben Ode: for @ann"), ("Every message", "Ben Ode: for everyone")]
    # My own message makes none.
    post(daemon, every, people.ann, "mine @ann")
    expect(listed.get_by_text("You: mine @ann")).to_be_visible()
    page.wait_for_timeout(300)
    assert len(notes(page)) == 2


# -- accessibility -----------------------------------------------------------------------------

WIDTHS = "() => [document.documentElement.scrollWidth, innerWidth]"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations_in_the_notification_parts(
        axe_page: Callable[..., Page], daemon: Daemon, people: People, scheme: str) -> None:
    uri = chat(daemon, f"Accessible ({scheme})", people.ben, people.ann, people.cy)
    post(daemon, uri, people.ben, f"look @ann ({scheme})")
    post(daemon, uri, people.ben, f"and @cy too ({scheme})")
    daemon.call("PUT", "/api/me/notifications",
                {"webhook": {"url": "http://127.0.0.1:9/hook", "secret": "s"}}, people.ann)
    found: dict[str, list[str]] = {}

    def check(page: Page, state: str) -> None:
        if not page.evaluate("() => Boolean(window.axe)"):
            page.add_script_tag(path=str(AXE))
        violations = page.evaluate(AXE_RUN)
        if violations:
            found[state] = violations
        width, window = page.evaluate(WIDTHS)
        if width > window:
            found[f"{state}: wider than the window"] = [f"{width} > {window}"]

    for width, height in ((1280, 800), (320, 640)):
        page = axe_page(scheme, width, height)
        page.add_init_script(f"sessionStorage.setItem('chatire.token', {json.dumps(people.ann)})")
        page.goto(f"/c/{uri}")
        expect(msg(page, f"look @ann ({scheme})").locator("mark.mention")).to_be_visible()
        if width < 760:
            page.get_by_role("button", name=re.compile("^Members")).click()
        expect(chat_level(page)).to_be_enabled()
        check(page, f"{width}: a mention and the chat's level")
        if width < 760:
            page.get_by_role("button", name=re.compile("^Members")).click()
        composer(page).press_sequentially("hi @")
        expect(page.get_by_role("listbox", name="Members to mention")).to_be_visible()
        check(page, f"{width}: the list of members to mention")
        composer(page).press("Escape")
        panel = open_panel(page)
        expect(panel.get_by_text("A secret is set.")).to_be_visible()
        check(page, f"{width}: the panel")
        panel.get_by_label("Webhook URL").fill("nope://x")
        panel.get_by_role("button", name="Save").click()
        expect(panel.get_by_role("alert")).not_to_be_empty()
        panel.get_by_role("button", name="Replace secret").click()
        check(page, f"{width}: the panel with an error and a new secret")
        page.keyboard.press("Escape")
        expect(panel).to_have_count(0)
    assert found == {}
