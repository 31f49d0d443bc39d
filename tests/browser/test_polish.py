"""The UI on a desktop and a phone, light and dark: layout, axe-core, links, days, sound."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import AXE, Daemon
from tests.browser.test_ui import connection, sign_in

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1280, 800), "phone": (320, 640)}
LONG_RUN = 45


@attrs.frozen
class Seeded:
    """What the module's daemon holds: Pat (who signs in), Quinn, and three chats."""

    long_talk: str
    days: str
    preview: str
    links: str
    quinn: str
    pat: str


@pytest.fixture(scope="module")
def seeded(daemon: Daemon) -> Seeded:
    pat = daemon.user("pat", "Pat Smith")
    quinn = daemon.user("quinn", "Quinn Blue")

    def chat(title: str) -> str:
        uri = str(daemon.call("POST", "/api/chats", {"title": title}, quinn)["chat"]["uri"])
        daemon.call("POST", f"/api/chats/{uri}/members", None, pat)
        return uri

    def post(uri: str, token: str, text: str) -> int:
        reply = daemon.call("POST", f"/api/chats/{uri}/messages", {"message": text}, token)
        return int(reply["message"]["seq"])

    days = chat("Over the days")
    # (author, text, created_at): two days, yesterday late, today after midnight, a break.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    script = [
        (quinn, "long ago", today - timedelta(days=3) + timedelta(hours=10)),
        (quinn, "late last night", today - timedelta(minutes=2)),
        (quinn, "just after midnight", today + timedelta(minutes=1)),
        (quinn, "a minute later", today + timedelta(minutes=2)),
        (quinn, "after a break", today + timedelta(minutes=12)),
        (pat, "last words", today + timedelta(minutes=13)),
    ]
    seqs = [post(days, token, text) for token, text, _ in script]
    with sqlite3.connect(daemon.db_path) as db:  # the daemon reads history from the store
        for seq, (_, _, when) in zip(seqs, script, strict=True):
            db.execute("UPDATE messages SET created_at = ? WHERE seq = ? AND chat_id = "
                       "(SELECT id FROM chats WHERE uri = ?)",
                       (when.isoformat(timespec="microseconds"), seq, days))
        # Pat's join (an event, shown as a line) came just before the first message.
        db.execute("UPDATE events SET created_at = ? WHERE seq < ? AND chat_id = "
                   "(SELECT id FROM chats WHERE uri = ?)",
                   ((script[0][2] - timedelta(minutes=1)).isoformat(timespec="microseconds"),
                    seqs[0], days))
    preview = chat("Quiet corner")  # no other test posts here
    post(preview, pat, "hello?")
    post(preview, quinn, "see   you\n soon")
    links = chat("Links")
    long_talk = chat("Long talk")
    post(long_talk, pat, "I start")
    for i in range(1, LONG_RUN + 1):
        post(long_talk, quinn, f"message {i}")
    return Seeded(long_talk=long_talk, days=days, preview=preview, links=links, quinn=quinn,
                  pat=pat)


def open_chat(page: Page, uri: str, last_text: str) -> None:
    page.goto(f"/c/{uri}")
    username = page.get_by_label("Username")
    # The UI renders once it has /api/config: wait for the sign-in form or the chat.
    expect(username.or_(page.get_by_role("log")).first).to_be_visible()
    if username.count():
        sign_in(page, "pat")
    expect(page.get_by_role("log").get_by_text(last_text, exact=True)).to_be_visible()


def item(page: Page, text: str) -> Any:
    """The list item (message) whose text is `text`."""
    return page.get_by_role("log").get_by_role("listitem").filter(
        has=page.get_by_text(text, exact=True))


SHOWN = """e => {
  let {width, height} = e.getBoundingClientRect();
  for (let box = e; box; box = box.parentElement) {  // a clipping ancestor hides it too
    if (getComputedStyle(box).overflow !== 'visible') {
      const r = box.getBoundingClientRect();
      width = Math.min(width, r.width);
      height = Math.min(height, r.height);
    }
  }
  return width > 2 && height > 2;
}"""


def shown(locator: Any) -> bool:
    """Whether the element is seen: more than a screen reader's 1x1 px (clipped) box."""
    return bool(locator.evaluate(SHOWN))


# -- 1. the document never scrolls, only the message list -------------------------------

@pytest.mark.parametrize("size", sorted(SIZES))
def test_only_the_message_list_scrolls(
        new_page: Callable[..., Page], seeded: Seeded, size: str) -> None:
    page = new_page(*SIZES[size])
    open_chat(page, seeded.long_talk, f"message {LONG_RUN}")
    box = page.locator(".topbar").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(3):
        page.mouse.wheel(0, 2000)
    page.wait_for_timeout(200)
    metrics = page.evaluate("""() => ({top: document.scrollingElement.scrollTop,
        height: document.scrollingElement.scrollHeight, window: innerHeight})""")
    assert metrics["top"] == 0, metrics
    assert metrics["height"] <= metrics["window"], metrics
    expect(page.get_by_role("log").get_by_role("listitem").last).to_be_in_viewport()


# -- 2 and 3: every view and state, desktop and phone, light and dark --------------------

@attrs.frozen
class State:
    """What one view/state looked like: its width, the controls off screen, axe's findings."""

    name: str
    scroll_width: int
    window_width: int
    offscreen: list[str]
    violations: list[str]


CONTROLS = """names => names.flatMap(([role, name]) => {
  const found = [...document.querySelectorAll('button, a')].filter(
    e => (e.getAttribute('aria-label') || e.textContent).includes(name));
  const r = found.length ? found[0].getBoundingClientRect() : null;
  return r && r.width > 0 && r.left >= 0 && r.right <= innerWidth && r.top >= 0
    && r.bottom <= innerHeight ? [] : [name];
})"""

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id} (${v.impact}): `
      + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')
      + ` ${v.nodes[0] ? v.nodes[0].failureSummary.split('\\n').slice(0, 2).join(' ') : ''}`);
}"""


@pytest.fixture(scope="module", params=[f"{size}-{scheme}" for size in sorted(SIZES)
                                        for scheme in ("light", "dark")])
def tour(request: pytest.FixtureRequest, browser: Any, daemon: Daemon,
         seeded: Seeded) -> Iterator[dict[str, State]]:
    """Walk one (viewport, colour scheme) through every view and state; record each."""
    if not AXE.exists():
        pytest.skip("axe-core is missing (make browser installs it)")
    size, scheme = request.param.split("-")
    width, height = SIZES[size]
    context = browser.new_context(
        base_url=daemon.base_url, viewport={"width": width, "height": height},
        color_scheme=scheme, reduced_motion="reduce", locale="en-GB", timezone_id="UTC",
        bypass_csp=True)  # axe-core goes in as a script tag; the CSP is not under test here
    context.set_default_timeout(10_000)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    states: dict[str, State] = {}
    # The page's sockets go through the test: while `blocked`, each new one is cut at once.
    blocked = False
    routes: list[Any] = []

    def socket_route(ws: Any) -> None:
        if blocked:
            ws.close()
        else:
            ws.connect_to_server()
            routes.append(ws)

    page.route_web_socket(re.compile(r"/ws$"), socket_route)

    def record(name: str, *controls: str) -> None:
        if not page.evaluate("() => Boolean(window.axe)"):
            page.add_script_tag(path=str(AXE))
        widths = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
        offscreen = page.evaluate(CONTROLS, [["button", c] for c in controls])
        states[name] = State(name, widths[0], widths[1], offscreen, page.evaluate(AXE_RUN))

    try:
        page.goto("/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        record("sign-in")
        page.get_by_role("button", name="Create an account").click()
        expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
        record("sign-up")
        page.get_by_role("button", name="I already have an account").click()
        sign_in(page, "pat")
        expect(connection(page)).to_have_text("Live")
        chats = page.get_by_role("navigation", name="Chats")
        expect(chats.get_by_role("link", name=re.compile("Long talk"))).to_be_visible()
        focused = page.evaluate("() => document.activeElement && document.activeElement.tagName")
        states["focus after sign-in"] = State(str(focused), 0, 0, [], [])
        record("chat list", "Sign out", "New chat")
        page.get_by_role("button", name="New chat").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        record("new chat dialog", "Create", "Cancel")
        page.get_by_role("button", name="Cancel").click()
        chats.get_by_role("link", name=re.compile("Long talk")).click()
        log = page.get_by_role("log")
        expect(log.get_by_text(f"message {LONG_RUN}", exact=True)).to_be_visible()
        record("chat", "Send", "Members", "Sign out")
        members = page.get_by_role("button", name=re.compile("^Members"))
        if members.get_attribute("aria-expanded") != "true":
            members.click()
        expect(page.get_by_role("complementary", name="Chat details")).to_be_visible()
        record("chat with members", "Members", "Sign out")
        if size == "phone":
            members.click()
        # The server cuts the socket and every new one: "Reconnecting in N s · Reconnect
        # now"; then the browser goes offline; then all is well again.
        blocked = True
        for route in routes:
            route.close()
        # Full-jitter backoff may retry at once (the button goes while it connects): look
        # during a wait of 2 s or more, which a few attempts bring.
        expect(connection(page)).to_have_text(
            re.compile(r"Reconnecting in (?:[2-9]|\d\d)"), timeout=30_000)
        record("reconnecting", "Send", "Members", "Sign out", "Reconnect now")
        context.set_offline(True)
        expect(connection(page)).to_have_text("Offline")
        box = page.get_by_label("Message", exact=True)
        box.fill(f"queued while offline ({request.param})")
        box.press("Enter")
        expect(log.get_by_text("Sending…")).to_be_visible()
        record("offline, a message pending", "Send", "Members", "Sign out", "Reconnect now")
        blocked = False
        context.set_offline(False)
        expect(connection(page)).to_have_text("Live", timeout=30_000)
        expect(log.get_by_text("Sending…")).to_have_count(0)
        yield states
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def test_no_view_or_state_is_wider_than_the_window(tour: dict[str, State]) -> None:
    wide = {s.name: (s.scroll_width, s.window_width) for s in tour.values()
            if s.scroll_width > s.window_width}
    assert wide == {}
    hidden = {s.name: s.offscreen for s in tour.values() if s.offscreen}
    assert hidden == {}, "controls off screen"


def test_no_serious_or_critical_accessibility_violations(tour: dict[str, State]) -> None:
    found = {s.name: s.violations for s in tour.values() if s.violations}
    assert found == {}


def test_sign_in_keeps_the_focus_on_the_page(tour: dict[str, State]) -> None:
    assert tour["focus after sign-in"].name not in ("BODY", "None")


def test_a_skip_link_leads_past_the_top_bar(new_page: Callable[..., Page], seeded: Seeded) -> None:
    page = new_page()
    open_chat(page, seeded.long_talk, f"message {LONG_RUN}")
    # The first stop of the page, before the top bar's links and buttons.
    page.get_by_role("banner").get_by_role("link", name="chatire").focus()
    page.keyboard.press("Shift+Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.get_by_role("main")).to_be_focused()


# -- 4. links ------------------------------------------------------------------------------

def test_urls_become_safe_links_and_nothing_else_does(
        new_page: Callable[..., Page], daemon: Daemon, seeded: Seeded) -> None:
    text = ("Docs at https://example.com/a?b=1&c=2. Also (see http://example.org/x_(y)) "
            "but not javascript:alert(1) nor data:text/html,<b>x</b> nor "
            "<img src=x onerror=\"window.pwned=1\"> nor ftp://example.net/f")
    daemon.call("POST", f"/api/chats/{seeded.links}/messages", {"message": text}, seeded.quinn)
    page = new_page()
    open_chat(page, seeded.links, text)
    log = page.get_by_role("log")
    links = log.get_by_role("link")
    expect(links).to_have_count(2)
    assert links.evaluate_all("as => as.map(a => [a.getAttribute('href'), a.textContent])") == [
        ["https://example.com/a?b=1&c=2", "https://example.com/a?b=1&c=2"],
        ["http://example.org/x_(y)", "http://example.org/x_(y)"]]
    for i in range(2):
        expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
        expect(links.nth(i)).to_have_attribute("target", "_blank")
    assert log.locator("img, b").count() == 0
    assert page.evaluate("() => window.pwned") is None


# -- 5. who said what, and when -------------------------------------------------------------

def test_days_authors_times_and_the_chat_list_preview(
        new_page: Callable[..., Page], seeded: Seeded) -> None:
    page = new_page()
    open_chat(page, seeded.days, "last words")
    days = page.get_by_role("log").locator(".day").all_inner_texts()
    assert len(days) == 3 and days[1:] == ["Yesterday", "Today"], days
    long_ago = datetime.now(UTC) - timedelta(days=3)
    assert re.search(rf"\b{long_ago.day}\b.*{long_ago.strftime('%B')}.*{long_ago.year}", days[0])
    # The author shows again on a new day and after a break of 5 minutes, not in between.
    for text, author_shown in [("long ago", True), ("late last night", True),
                               ("just after midnight", True), ("a minute later", False),
                               ("after a break", True)]:
        assert shown(item(page, text).locator(".author")) == author_shown, text
    # A follow-on message's time shows on hover.
    follow_on = item(page, "a minute later")
    page.mouse.move(0, 0)  # over the top bar: no message is hovered
    assert not shown(follow_on.locator("time"))
    follow_on.hover()
    assert shown(follow_on.locator("time"))
    expect(follow_on.locator("time")).to_have_text("00:02")
    # My own message carries my name for screen readers (not display: none).
    mine = item(page, "last words").locator(".author")
    expect(mine).to_have_text("Pat Smith")
    assert mine.evaluate("e => getComputedStyle(e).display") != "none"
    # The chat list previews each chat's last message and its time.
    chats = page.get_by_role("navigation", name="Chats")
    expect(chats.get_by_role("link", name=re.compile("Over the days"))).to_contain_text(
        "You: last words")
    expect(chats.get_by_role("link", name=re.compile("Over the days"))).to_contain_text("00:13")
    expect(chats.get_by_role("link", name=re.compile("Quiet corner"))).to_contain_text(
        "Quinn Blue: see you soon")
    expect(chats.get_by_text(re.compile(r"\d+ messages?$"))).to_have_count(0)


# -- 7. sound and the offline signal --------------------------------------------------------

COUNT_CHIMES = """() => {
  window.chimes = 0;
  const create = AudioContext.prototype.createOscillator;
  AudioContext.prototype.createOscillator = function () {
    window.chimes += 1;
    return create.call(this);
  };
}"""


def test_the_chime_can_be_muted_and_stays_muted(
        new_page: Callable[..., Page], daemon: Daemon, seeded: Seeded) -> None:
    page = new_page()
    page.add_init_script(f"({COUNT_CHIMES})()")
    open_chat(page, seeded.long_talk, f"message {LONG_RUN}")
    page.get_by_label("Message", exact=True).press("a")  # a gesture: audio may start
    page.evaluate("() => { document.hasFocus = () => false; dispatchEvent(new Event('blur')); }")

    def post(text: str) -> None:
        daemon.call("POST", f"/api/chats/{seeded.long_talk}/messages", {"message": text},
                    seeded.quinn)
        expect(page.get_by_role("log").get_by_text(text, exact=True)).to_be_visible()

    post("chime once")
    page.wait_for_function("window.chimes > 0", timeout=5000)
    mute = page.get_by_role("button", name="Mute sound")
    expect(mute).to_have_attribute("aria-pressed", "false")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "true")
    before = page.evaluate("window.chimes")
    page.evaluate("() => { document.hasFocus = () => false; dispatchEvent(new Event('blur')); }")
    page.wait_for_timeout(1100)  # past the one-chime-a-second throttle
    post("silence please")
    page.wait_for_timeout(300)
    assert page.evaluate("window.chimes") == before
    page.reload()  # remembered by this browser
    expect(page.get_by_role("button", name="Mute sound")).to_have_attribute("aria-pressed", "true")
    expect(connection(page)).to_have_text("Live")


def test_the_browsers_offline_signal_shows_at_once(
        new_page: Callable[..., Page], seeded: Seeded) -> None:
    page = new_page(*SIZES["phone"])
    open_chat(page, seeded.long_talk, f"message {LONG_RUN}")
    expect(connection(page)).to_have_text("Live")
    page.context.set_offline(True)
    # At once: not after a ping or the socket times out (the old UI stayed "Live").
    expect(connection(page)).to_have_text("Offline", timeout=2000)
    expect(page.get_by_role("button", name="Reconnect now")).to_be_visible()
    page.context.set_offline(False)
    expect(connection(page)).to_have_text("Live", timeout=30_000)
