"""The chat timeline in the browser: edit, delete, react, reply, join/leave lines, read state."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import AXE, Daemon
from tests.browser.test_polish import AXE_RUN
from tests.browser.test_ui import PASSWORD, connection

pytestmark = pytest.mark.browser


@attrs.frozen
class People:
    """Ann owns the chats she makes; Ben and Cy are plain members."""

    ann: str
    ben: str
    cy: str


@pytest.fixture(scope="module")
def people(daemon: Daemon) -> People:
    return People(ann=daemon.user("ann", "Ann Lee"), ben=daemon.user("ben", "Ben Ode"),
                  cy=daemon.user("cy", "Cy Young"))


def token(daemon: Daemon, username: str) -> str:
    """A fresh token: one more session of `username`."""
    return str(daemon.call("POST", "/api/auth/token",
                           {"username": username, "password": PASSWORD})["token"])


def chat(daemon: Daemon, title: str, owner: str, *members: str) -> str:
    uri = str(daemon.call("POST", "/api/chats", {"title": title}, owner)["chat"]["uri"])
    for member in members:
        daemon.call("POST", f"/api/chats/{uri}/members", None, member)
    return uri


def post(daemon: Daemon, uri: str, who: str, text: str, **extra: Any) -> dict[str, Any]:
    reply = daemon.call("POST", f"/api/chats/{uri}/messages", {"message": text, **extra}, who)
    return dict(reply["message"])


def session(new_page: Callable[..., Page], session_token: str, path: str,
            **size: int) -> Page:
    """A browser context signed in with `session_token`, opened at `path`."""
    page = new_page(**size)
    page.add_init_script(f"sessionStorage.setItem('chatire.token', {json.dumps(session_token)})")
    page.goto(path)
    expect(connection(page)).to_have_text("Live")
    return page


def open_chat(new_page: Callable[..., Page], session_token: str, uri: str, **size: int) -> Page:
    page = session(new_page, session_token, f"/c/{uri}", **size)
    expect(page.get_by_role("log").locator("[aria-busy]")).to_have_count(0)
    expect(page.locator(".log-wrap[aria-busy]")).to_have_count(0)
    return page


def log(page: Page) -> Locator:
    return page.get_by_role("log")


def msg(page: Page, text: str) -> Locator:
    """The message whose own text is exactly `text` (not a quote of it)."""
    exact = re.compile("^" + re.escape(text) + "$")
    return log(page).locator("li.msg").filter(has=page.locator("p.text", has_text=exact))


def action(page: Page, text: str, name: str) -> Locator:
    """Hover the message `text` and return its toolbar button `name`."""
    message = msg(page, text)
    message.hover()
    return message.get_by_role("group", name="Message actions").get_by_role(
        "button", name=name, exact=True)


def send(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    expect(msg(page, text)).to_have_attribute("data-seq", re.compile(r"\d+"))


def msg_seq(daemon: Daemon, uri: str, who: str, text: str) -> int:
    messages = daemon.call("GET", f"/api/chats/{uri}/messages?limit=200", token=who)["messages"]
    return int(next(m["seq"] for m in messages if m["message"] == text))


# -- edit --------------------------------------------------------------------------------------

def test_edit_inline_esc_cancels_enter_saves_and_the_other_side_sees_it(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Edits", people.ann, people.ben)
    post(daemon, uri, people.ben, "a message by Ben")
    ann = open_chat(new_page, people.ann, uri)
    ben = open_chat(new_page, people.ben, uri)
    send(ann, "helo wrld")
    expect(msg(ben, "helo wrld")).to_have_count(1)

    # Only the author may edit.
    expect(action(ann, "a message by Ben", "Reply")).to_be_visible()
    expect(action(ann, "a message by Ben", "Edit")).to_have_count(0)
    expect(action(ben, "helo wrld", "Edit")).to_have_count(0)

    # Esc cancels: the text and the absence of "edited" stay, on both sides.
    action(ann, "helo wrld", "Edit").click()
    field = ann.get_by_role("textbox", name="Edit message")
    expect(field).to_be_focused()
    expect(field).to_have_value("helo wrld")
    field.fill("something else entirely")
    field.press("Escape")
    expect(field).to_have_count(0)
    expect(msg(ann, "helo wrld")).to_have_count(1)
    expect(msg(ann, "helo wrld")).to_be_focused()
    expect(log(ann).get_by_text("something else entirely")).to_have_count(0)
    expect(msg(ann, "helo wrld").get_by_text("edited", exact=True)).to_have_count(0)

    # Enter saves; Shift+Enter is a new line inside the edit.
    action(ann, "helo wrld", "Edit").click()
    field.fill("hello world")
    field.press("Shift+Enter")
    field.press_sequentially("second line")
    field.press("Enter")
    expect(field).to_have_count(0)
    for page in (ann, ben):
        edited = msg(page, "hello world\nsecond line")
        expect(edited).to_have_count(1)
        expect(edited.get_by_text("edited", exact=True)).to_be_visible()
        expect(msg(page, "helo wrld")).to_have_count(0)
    # The server has it, and a reload shows it the same.
    history = daemon.call("GET", f"/api/chats/{uri}/messages", token=people.ann)["messages"]
    assert [(m["message"], m["edited_at"] is not None) for m in history] == [
        ("a message by Ben", False), ("hello world\nsecond line", True)]
    ben.reload()
    expect(msg(ben, "hello world\nsecond line").get_by_text("edited", exact=True)).to_be_visible()

    # An empty edit is refused in place (deleting is its own action).
    action(ann, "hello world\nsecond line", "Edit").click()
    field.fill("   ")
    field.press("Enter")
    expect(ann.get_by_role("alert").filter(has_text="cannot be empty")).to_be_visible()
    field.press("Escape")
    expect(msg(ann, "hello world\nsecond line")).to_have_count(1)


# -- delete ------------------------------------------------------------------------------------

def test_delete_asks_first_and_everyone_sees_message_deleted(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Deletes", people.ann, people.ben)
    post(daemon, uri, people.ann, "ann's first")
    post(daemon, uri, people.ann, "ann's regret")
    post(daemon, uri, people.ben, "ben's rant")
    post(daemon, uri, people.ben, "ben's own mistake")
    ann = open_chat(new_page, people.ann, uri)
    ben = open_chat(new_page, people.ben, uri)

    # Ben (a member) may delete only his own; Ann (the owner) may delete any message.
    expect(action(ben, "ann's regret", "Reply")).to_be_visible()
    expect(action(ben, "ann's regret", "Delete")).to_have_count(0)
    expect(action(ben, "ben's own mistake", "Delete")).to_be_visible()
    expect(action(ann, "ben's rant", "Delete")).to_be_visible()

    # Cancel keeps the message.
    action(ann, "ann's regret", "Delete").click()
    dialog = ann.get_by_role("dialog", name="Delete this message?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(msg(ann, "ann's regret")).to_have_count(1)
    expect(msg(ben, "ann's regret")).to_have_count(1)

    # Confirmed: "message deleted" on both sides, the text gone from the page and the server.
    action(ann, "ann's regret", "Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    for page in (ann, ben):
        expect(msg(page, "ann's regret")).to_have_count(0)
        expect(msg(page, "message deleted")).to_have_count(1)
        expect(log(page).get_by_text("ann's regret")).to_have_count(0)

    # The owner deletes Ben's message; Ben deletes his own (Esc would have cancelled).
    action(ann, "ben's rant", "Delete").click()
    expect(dialog).to_contain_text("Ben Ode")
    dialog.get_by_role("button", name="Delete").click()
    action(ben, "ben's own mistake", "Delete").click()
    ben_dialog = ben.get_by_role("dialog", name="Delete this message?")
    ben_dialog.get_by_role("button", name="Delete").click()
    for page in (ann, ben):
        expect(msg(page, "message deleted")).to_have_count(3)
        expect(msg(page, "ann's first")).to_have_count(1)
        # A deleted message has no actions left.
        gone = msg(page, "message deleted")
        expect(gone.get_by_role("group", name="Message actions")).to_have_count(0)
    history = daemon.call("GET", f"/api/chats/{uri}/messages", token=people.ben)["messages"]
    assert [(m["message"], m["deleted"]) for m in history] == [
        ("ann's first", False), ("", True), ("", True), ("", True)]


# -- react -------------------------------------------------------------------------------------

def chip(page: Page, text: str, label: str) -> Locator:
    return msg(page, text).locator(".reactions").get_by_role("button", name=label, exact=True)


def test_reactions_toggle_and_counts_reach_the_other_user(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Reactions", people.ann, people.ben)
    post(daemon, uri, people.ann, "react to me")
    ann = open_chat(new_page, people.ann, uri)
    ben = open_chat(new_page, people.ben, uri)

    # Ann picks 👍 from the picker: one 👍, hers.
    action(ann, "react to me", "React").click()
    picker = ann.get_by_role("dialog", name="Add a reaction")
    expect(picker.get_by_role("button")).to_have_count(8)  # the common ones
    picker.get_by_role("button", name="👍", exact=True).click()
    expect(picker).to_have_count(0)
    expect(chip(ann, "react to me", "👍 1")).to_have_attribute("aria-pressed", "true")
    expect(chip(ben, "react to me", "👍 1")).to_have_attribute("aria-pressed", "false")

    # Ben adds his by clicking the chip: 2 for both, pressed for each of them.
    chip(ben, "react to me", "👍 1").click()
    expect(chip(ben, "react to me", "👍 2")).to_have_attribute("aria-pressed", "true")
    expect(chip(ann, "react to me", "👍 2")).to_have_attribute("aria-pressed", "true")

    # Ben's picker offers the common emoji plus those on the message, his own pressed.
    seq = msg_seq(daemon, uri, people.ann, "react to me")
    daemon.call("PUT", f"/api/chats/{uri}/messages/{seq}/reactions/%F0%9F%A6%84", None,
                people.ann)  # 🦄: not a common one
    expect(chip(ben, "react to me", "🦄 1")).to_be_visible()
    action(ben, "react to me", "React").click()
    ben_picker = ben.get_by_role("dialog", name="Add a reaction")
    expect(ben_picker.get_by_role("button")).to_have_count(9)
    expect(ben_picker.get_by_role("button", name="👍", exact=True)).to_have_attribute(
        "aria-pressed", "true")
    ben_picker.get_by_role("button", name="🎉", exact=True).click()
    for page in (ann, ben):
        expect(chip(page, "react to me", "🎉 1")).to_be_visible()
        chips = msg(page, "react to me").locator(".chip")
        expect(chips).to_have_count(3)

    # Ann takes hers back (chip click): 1 left, Ben's; then Ben's too: the chip goes.
    chip(ann, "react to me", "👍 2").click()
    expect(chip(ann, "react to me", "👍 1")).to_have_attribute("aria-pressed", "false")
    expect(chip(ben, "react to me", "👍 1")).to_have_attribute("aria-pressed", "true")
    chip(ben, "react to me", "👍 1").click()
    for page in (ann, ben):
        expect(msg(page, "react to me").locator(".chip", has_text="👍")).to_have_count(0)
    # What the server holds agrees with both screens; a reload shows the same.
    message = daemon.call("GET", f"/api/chats/{uri}/messages", token=people.ben)["messages"][0]
    assert [(r["emoji"], r["count"]) for r in message["reactions"]] == [("🦄", 1), ("🎉", 1)]
    ann.reload()
    expect(chip(ann, "react to me", "🎉 1")).to_have_attribute("aria-pressed", "false")
    expect(chip(ann, "react to me", "🦄 1")).to_have_attribute("aria-pressed", "true")


# -- reply -------------------------------------------------------------------------------------

def test_reply_quotes_the_original_and_jumps_to_it_on_an_older_page(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Replies", people.ann, people.ben)
    post(daemon, uri, people.ben, "the original question")
    for i in range(1, 61):  # more than a page: the original is not among the latest 50
        post(daemon, uri, people.ben, f"filler {i}")
    ann = open_chat(new_page, people.ann, uri, height=700)
    expect(msg(ann, "filler 60")).to_be_visible()
    expect(msg(ann, "the original question")).to_have_count(0)

    # Ann scrolls up to the original and answers it; she can cancel and start again.
    log(ann).locator("li").first.scroll_into_view_if_needed()
    ann.mouse.wheel(0, -5000)
    expect(msg(ann, "the original question")).to_have_count(1)
    action(ann, "the original question", "Reply").click()
    box = ann.get_by_label("Message", exact=True)
    expect(box).to_be_focused()
    expect(ann.get_by_text("Replying to Ben Ode: the original question")).to_be_visible()
    ann.get_by_role("button", name="Cancel reply").click()
    expect(ann.get_by_text("Replying to")).to_be_hidden()
    action(ann, "the original question", "Reply").click()
    expect(ann.get_by_text("Replying to Ben Ode: the original question")).to_be_visible()
    send(ann, "my answer")
    expect(ann.get_by_text("Replying to")).to_be_hidden()
    quote = msg(ann, "my answer").get_by_role(
        "button", name="In reply to Ben Ode: the original question")
    expect(quote).to_be_visible()
    stored = daemon.call("GET", f"/api/chats/{uri}/messages?limit=1", token=people.ann)["messages"]
    assert stored[0]["message"] == "my answer"
    assert stored[0]["reply_to"] == msg_seq(daemon, uri, people.ann, "the original question")

    # Ben, fresh: the original is two pages back; the quote names it all the same, and
    # following it loads the older pages and shows the original, focused.
    ben = open_chat(new_page, people.ben, uri, height=700)
    expect(msg(ben, "my answer")).to_be_visible()
    expect(msg(ben, "the original question")).to_have_count(0)
    ben_quote = msg(ben, "my answer").get_by_role(
        "button", name="In reply to Ben Ode: the original question")
    expect(ben_quote).to_be_visible()
    ben_quote.click()
    original = msg(ben, "the original question")
    expect(original).to_be_focused()
    expect(original).to_be_in_viewport()
    seqs = [int(s) for s in log(ben).locator("li.msg[data-seq]").evaluate_all(
        "items => items.map(i => i.dataset.seq)")]
    assert seqs == sorted(seqs) and len(seqs) == 62


# -- join / leave ------------------------------------------------------------------------------

def test_join_and_leave_show_as_lines(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Comings and goings", people.ann)
    post(daemon, uri, people.ann, "anyone?")
    ann = open_chat(new_page, people.ann, uri)
    daemon.call("POST", f"/api/chats/{uri}/members", None, people.cy)
    expect(log(ann).get_by_text("Cy Young joined")).to_be_visible()
    post(daemon, uri, people.cy, "hi, just passing")
    daemon.call("DELETE", f"/api/chats/{uri}/members/me", None, people.cy)
    expect(log(ann).get_by_text("Cy Young left")).to_be_visible()
    expect(ann.get_by_role("complementary", name="Chat details")).not_to_contain_text("Cy Young")
    order = log(ann).locator("li").evaluate_all(
        "items => items.map(i => i.querySelector('.text, .line-text > span').textContent)")
    assert order == ["anyone?", "Cy Young joined", "hi, just passing", "Cy Young left"]
    # They are part of the timeline, so a reload shows them in place too.
    ann.reload()
    expect(log(ann).get_by_text("Cy Young left")).to_be_visible()
    assert log(ann).locator("li").evaluate_all(
        "items => items.map(i => i.querySelector('.text, .line-text > span').textContent)") == order
    # A line is not a message: no actions, not a tab stop.
    line = log(ann).locator("li.line").first
    assert line.get_attribute("tabindex") is None
    expect(line.get_by_role("button")).to_have_count(0)


# -- idempotent frames ---------------------------------------------------------------------------

def test_every_frame_delivered_twice_changes_nothing(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    here = chat(daemon, "Twice here", people.ann, people.ben)
    there = chat(daemon, "Twice there", people.ann, people.ben)
    keep = post(daemon, here, people.ben, "keep me")
    drop = post(daemon, here, people.ben, "drop me")
    page = new_page()
    page.add_init_script(f"sessionStorage.setItem('chatire.token', {json.dumps(people.ann)})")
    doubled: list[str] = []

    reads: list[tuple[float, dict[str, Any]]] = []

    def twice(ws: Any) -> None:  # each server frame reaches the page two times
        server = ws.connect_to_server()

        def relay(message: str | bytes) -> None:
            doubled.append(str(message))
            ws.send(message)
            ws.send(message)

        def up(message: str | bytes) -> None:  # the page's frames, as they are
            frame = json.loads(message)
            if frame.get("type") == "read":
                reads.append((time.monotonic(), frame))
            server.send(message)

        server.on_message(relay)
        ws.on_message(up)

    page.route_web_socket(re.compile(r"/ws$"), twice)
    page.goto(f"/c/{here}")
    expect(connection(page)).to_have_text("Live")
    expect(msg(page, "drop me")).to_be_visible()

    base = f"/api/chats/{here}/messages"
    daemon.call("PUT", f"{base}/{keep['seq']}/reactions/%F0%9F%91%8D", None, people.ben)
    daemon.call("PUT", f"{base}/{keep['seq']}/reactions/%F0%9F%91%8D", None, people.ann)
    daemon.call("DELETE", f"{base}/{keep['seq']}/reactions/%F0%9F%91%8D", None, people.ben)
    daemon.call("PATCH", f"{base}/{keep['seq']}", {"message": "kept, edited"}, people.ben)
    daemon.call("DELETE", f"{base}/{drop['seq']}", None, people.ben)
    daemon.call("POST", f"/api/chats/{here}/members", None, people.cy)
    daemon.call("DELETE", f"/api/chats/{here}/members/me", None, people.cy)
    post(daemon, here, people.ben, "last here")
    for text in ("one", "two"):
        post(daemon, there, people.ben, text)

    expect(msg(page, "last here")).to_be_visible()
    expect(log(page).get_by_text("Cy Young left")).to_be_visible()
    expect(badge_link(page, "Twice there")).to_have_accessible_name(re.compile("unread"))
    assert any('"type":"event"' in f.replace(" ", "") for f in doubled)
    expect(msg(page, "last here")).to_have_count(1)
    expect(msg(page, "kept, edited")).to_have_count(1)
    expect(msg(page, "kept, edited").get_by_text("edited", exact=True)).to_have_count(1)
    expect(chip(page, "kept, edited", "👍 1")).to_have_attribute("aria-pressed", "true")
    expect(msg(page, "message deleted")).to_have_count(1)
    expect(log(page).get_by_text("Cy Young joined")).to_have_count(1)
    expect(log(page).get_by_text("Cy Young left")).to_have_count(1)
    expect(badge_link(page, "Twice there")).to_have_accessible_name(re.compile(", 2 unread"))
    seqs = [int(s) for s in log(page).locator("li[data-seq], li[data-event-seq]").evaluate_all(
        "items => items.map(i => i.dataset.seq || i.dataset.eventSeq)")]
    assert seqs == sorted(set(seqs))

    # Ann saw it all as it came: her read mark reaches the end, sent at most once a second
    # (measured here, after the page: a little less).
    last = msg_seq(daemon, here, people.ann, "last here")
    deadline = time.monotonic() + 5
    while read_seq(daemon, people.ann, here) < last and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert read_seq(daemon, people.ann, here) >= last
    mine = [(at, frame["seq"]) for at, frame in reads if frame["chat"] == here]
    assert [seq for _, seq in mine] == sorted({seq for _, seq in mine})
    assert all(b[0] - a[0] > 0.7 for a, b in itertools.pairwise(mine)), mine


def read_seq(daemon: Daemon, who: str, uri: str) -> int:
    chats = daemon.call("GET", "/api/chats", token=who)["chats"]
    return int(next(c["read_seq"] for c in chats if c["uri"] == uri))


# -- read state --------------------------------------------------------------------------------

def badge_link(page: Page, title: str) -> Locator:
    return page.get_by_role("navigation", name="Chats").get_by_role(
        "link", name=re.compile(re.escape(title)))


def test_read_state_is_the_servers_and_two_sessions_agree(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    news = chat(daemon, "News desk", people.ann, people.ben)
    post(daemon, news, people.ben, "already read")
    elsewhere = chat(daemon, "Elsewhere", people.ben)
    # Two sessions of Ben, each in another chat.
    first = open_chat(new_page, token(daemon, "ben"), elsewhere)
    second = session(new_page, token(daemon, "ben"), "/")
    for page in (first, second):
        expect(badge_link(page, "News desk")).not_to_contain_text("unread")

    # Ann writes three messages: both sessions count them at once (no reload, no focus).
    for i in (1, 2, 3):
        post(daemon, news, people.ann, f"news {i}")
    for page in (first, second):
        expect(badge_link(page, "News desk")).to_have_accessible_name(re.compile("3 unread"))

    # Ben reads them in the second session: the "New messages" line sits above the first
    # unread one, and the first session's badge clears within a second or so.
    badge_link(second, "News desk").click()
    expect(msg(second, "news 3")).to_be_visible()
    divider = log(second).locator(".new-divider")
    expect(divider).to_have_count(1)
    expect(msg(second, "news 1").locator(".new-divider")).to_have_text("New messages")
    expect(badge_link(second, "News desk")).not_to_contain_text("unread")
    expect(badge_link(first, "News desk")).not_to_contain_text("unread", timeout=5000)

    # The server holds it (the other session is told before the coalesced write, which
    # follows within the half-second window): a reload of the first session (no local
    # marks) shows it read, and the chat opens without the "New messages" line.
    last = msg_seq(daemon, news, people.ben, "news 3")
    deadline = time.monotonic() + 5
    while True:
        chats = daemon.call("GET", "/api/chats", token=people.ben)["chats"]
        held = next(c for c in chats if c["uri"] == news)
        if (held["unread"], held["read_seq"] >= last) == (0, True) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert held["unread"] == 0 and held["read_seq"] >= last
    assert not any("seen" in key for key in first.evaluate("Object.keys(localStorage)"))
    first.reload()
    expect(connection(first)).to_have_text("Live")
    expect(badge_link(first, "News desk")).not_to_contain_text("unread")
    badge_link(first, "News desk").click()
    expect(msg(first, "news 3")).to_be_visible()
    expect(log(first).locator(".new-divider")).to_have_count(0)

    # While the first session looks elsewhere, one more message: both count 1; reading it
    # in the first clears the second.
    badge_link(first, "Elsewhere").click()
    expect(first.get_by_role("heading", name="Elsewhere")).to_be_visible()
    second.get_by_role("link", name="chatire").click()  # back home: nothing open
    post(daemon, news, people.ann, "news 4")
    for page in (first, second):
        expect(badge_link(page, "News desk")).to_have_accessible_name(re.compile("1 unread"))
    badge_link(first, "News desk").click()
    expect(msg(first, "news 4")).to_be_visible()
    expect(badge_link(second, "News desk")).not_to_contain_text("unread")


# -- keyboard and touch ------------------------------------------------------------------------

def test_keyboard_only_edit_and_react(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Keys", people.ann, people.ben)
    post(daemon, uri, people.ben, "from Ben")
    post(daemon, uri, people.ann, "typo hree")
    ann = open_chat(new_page, people.ann, uri)
    box = ann.get_by_label("Message", exact=True)
    expect(box).to_be_focused()

    # Shift+Tab from the composer reaches the newest message; its toolbar shows.
    ann.keyboard.press("Shift+Tab")
    newest = msg(ann, "typo hree")
    expect(newest).to_be_focused()
    toolbar = newest.get_by_role("group", name="Message actions")
    expect(toolbar).to_be_visible()
    # Arrow keys move between messages; only one of them is a tab stop.
    ann.keyboard.press("ArrowUp")
    expect(msg(ann, "from Ben")).to_be_focused()
    expect(msg(ann, "from Ben").get_by_role("button", name="Edit")).to_have_count(0)
    assert log(ann).locator("li.msg[tabindex='0']").count() == 1
    ann.keyboard.press("ArrowDown")
    expect(newest).to_be_focused()

    # Enter enters the toolbar; Tab walks it; Enter on Edit; type; Enter saves.
    ann.keyboard.press("Enter")
    expect(toolbar.get_by_role("button", name="React")).to_be_focused()
    ann.keyboard.press("Tab")
    expect(toolbar.get_by_role("button", name="Reply")).to_be_focused()
    ann.keyboard.press("Tab")
    expect(toolbar.get_by_role("button", name="Edit")).to_be_focused()
    ann.keyboard.press("Enter")
    field = ann.get_by_role("textbox", name="Edit message")
    expect(field).to_be_focused()
    ann.keyboard.press("ControlOrMeta+a")
    ann.keyboard.type("typo here")
    ann.keyboard.press("Enter")
    fixed = msg(ann, "typo here")
    expect(fixed.get_by_text("edited", exact=True)).to_be_visible()
    expect(fixed).to_be_focused()
    toolbar = fixed.get_by_role("group", name="Message actions")

    # React: Enter, Enter opens the picker on its first emoji, arrows move, Enter picks.
    ann.keyboard.press("Enter")
    ann.keyboard.press("Enter")
    picker = ann.get_by_role("dialog", name="Add a reaction")
    expect(picker.get_by_role("button").first).to_be_focused()
    ann.keyboard.press("ArrowRight")
    expect(picker.get_by_role("button", name="❤️")).to_be_focused()
    ann.keyboard.press("Enter")
    expect(chip(ann, "typo here", "❤️ 1")).to_have_attribute("aria-pressed", "true")
    # Esc closes the picker back onto its button.
    expect(toolbar.get_by_role("button", name="React")).to_be_focused()
    ann.keyboard.press("Enter")
    expect(picker).to_be_visible()
    ann.keyboard.press("Escape")
    expect(picker).to_have_count(0)
    expect(fixed.get_by_role("button", name="React")).to_be_focused()
    # The chip is reachable from the message too, and toggles with the keyboard.
    ann.keyboard.press("Escape")
    expect(fixed).to_be_focused()
    ann.keyboard.press("Tab")
    expect(chip(ann, "typo here", "❤️ 1")).to_be_focused()
    ann.keyboard.press("Enter")
    expect(msg(ann, "typo here").locator(".chip")).to_have_count(0)


def test_a_long_press_shows_the_actions_on_a_touch_screen(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Touch", people.ann, people.ben)
    post(daemon, uri, people.ben, "hold me")
    ann = open_chat(new_page, people.ann, uri, width=360, height=700)
    message = msg(ann, "hold me")
    toolbar = message.get_by_role("group", name="Message actions")
    expect(toolbar).to_be_hidden()
    box = message.locator(".bubble").bounding_box()
    assert box is not None
    point = {"pointerType": "touch", "isPrimary": True, "pointerId": 7,
             "clientX": box["x"] + 10, "clientY": box["y"] + 10}
    message.locator(".text").dispatch_event("pointerdown", point)
    expect(toolbar).to_be_visible()
    message.locator(".text").dispatch_event("pointerup", point)
    toolbar.get_by_role("button", name="React").click()
    ann.get_by_role("dialog", name="Add a reaction").get_by_role("button", name="😂").click()
    expect(chip(ann, "hold me", "😂 1")).to_be_visible()


# -- accessibility -----------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations_on_a_full_timeline(
        axe_page: Callable[[str], Page], daemon: Daemon, people: People, scheme: str) -> None:
    uri = chat(daemon, f"Everything ({scheme})", people.ann, people.ben)
    first = post(daemon, uri, people.ann, "a question from Ann")
    post(daemon, uri, people.ben, "an answer from Ben", reply_to=first["seq"])
    edited = post(daemon, uri, people.ann, "an edited thing")
    daemon.call("PATCH", f"/api/chats/{uri}/messages/{edited['seq']}",
                {"message": "an edited thing, fixed"}, people.ann)
    gone = post(daemon, uri, people.ben, "a regret")
    daemon.call("DELETE", f"/api/chats/{uri}/messages/{gone['seq']}", None, people.ben)
    for who, emoji in ((people.ann, "%F0%9F%91%8D"), (people.ben, "%F0%9F%91%8D"),
                       (people.ben, "%F0%9F%8E%89")):
        daemon.call("PUT", f"/api/chats/{uri}/messages/{first['seq']}/reactions/{emoji}", None, who)
    daemon.call("POST", f"/api/chats/{uri}/members", None, people.cy)
    daemon.call("DELETE", f"/api/chats/{uri}/members/me", None, people.cy)
    post(daemon, uri, people.ben, "unread for Ann")

    page = axe_page(scheme)
    page.add_init_script(f"sessionStorage.setItem('chatire.token', {json.dumps(people.ann)})")
    page.goto(f"/c/{uri}")
    expect(msg(page, "unread for Ann")).to_be_visible()
    for shown in (msg(page, "an edited thing, fixed").get_by_text("edited", exact=True),
                  msg(page, "message deleted"), log(page).get_by_text("Cy Young joined"),
                  log(page).get_by_text("Cy Young left"), log(page).locator(".new-divider"),
                  chip(page, "a question from Ann", "👍 2"),
                  msg(page, "an answer from Ben").locator(".quote")):
        expect(shown).to_be_visible()
    page.add_script_tag(path=str(AXE))
    found: dict[str, list[str]] = {}

    def check(state: str) -> None:
        violations = page.evaluate(AXE_RUN)
        if violations:
            found[state] = violations

    # A message with the focus (its toolbar shown) and a reply being written.
    action(page, "an answer from Ben", "Reply").click()
    expect(page.get_by_text("Replying to Ben Ode")).to_be_visible()
    msg(page, "a question from Ann").focus()
    check("timeline, toolbar and reply bar")
    action(page, "a question from Ann", "React").click()
    expect(page.get_by_role("dialog", name="Add a reaction")).to_be_visible()
    check("reaction picker")
    page.keyboard.press("Escape")
    action(page, "an edited thing, fixed", "Edit").click()
    expect(page.get_by_role("textbox", name="Edit message")).to_be_visible()
    check("inline editor")
    page.keyboard.press("Escape")
    action(page, "a question from Ann", "Delete").click()
    expect(page.get_by_role("dialog", name="Delete this message?")).to_be_visible()
    check("delete dialog")
    page.keyboard.press("Escape")
    assert found == {}
