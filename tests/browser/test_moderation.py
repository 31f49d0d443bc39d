"""Running a chat in the browser: settings, roles, invites and the join page, removal, bans,
deletion, and direct chats."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import AXE, Daemon
from tests.browser.test_polish import AXE_RUN
from tests.browser.test_timeline import (
    People,
    badge_link,
    chat,
    log,
    msg,
    open_chat,
    post,
    send,
    session,
)
from tests.browser.test_ui import connection, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def people(daemon: Daemon) -> People:
    return People(ann=daemon.user("ann", "Ann Lee"), ben=daemon.user("ben", "Ben Ode"),
                  cy=daemon.user("cy", "Cy Young"))


def settings_button(page: Page) -> Locator:
    return page.locator(".chat-head").get_by_role("button", name="Settings", exact=True)


def open_settings(page: Page) -> Locator:
    settings_button(page).click()
    dialog = page.get_by_role("dialog", name="Chat settings")
    expect(dialog).to_be_visible()
    return dialog


def details(page: Page) -> Locator:
    return page.get_by_role("complementary", name="Chat details")


def member(page: Page, name: str) -> Locator:
    """The row of `name` in the chat's details."""
    return details(page).get_by_role("listitem").filter(has_text=name)


def chat_link(page: Page, name: str) -> Locator:
    """The chat list's link of the chat named exactly `name`."""
    exact = re.compile("^" + re.escape(name) + "$")
    return page.get_by_role("navigation", name="Chats").get_by_role("link").filter(
        has=page.locator(".chat-title", has_text=exact))


def line(page: Page, text: str) -> Locator:
    return log(page).locator("li.line").filter(has_text=text)


# -- settings and roles --------------------------------------------------------------------------

def test_renames_join_rules_and_roles_reach_everyone_live(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Book club", people.ann, people.ben, people.cy)
    post(daemon, uri, people.ann, "welcome")
    ann = open_chat(new_page, people.ann, uri)
    ben = open_chat(new_page, people.ben, uri)
    cy = open_chat(new_page, people.cy, uri)

    # Only the owner (and admins) see the settings; everyone sees the roles.
    expect(settings_button(ann)).to_be_visible()
    for page in (ben, cy):
        expect(settings_button(page)).to_be_hidden()
        expect(member(page, "Ann Lee").locator(".role-badge")).to_have_text("Owner")
        expect(member(page, "Ben Ode").locator(".role-badge")).to_have_count(0)

    # Rename: the header, the list and a line of the timeline, on every screen.
    dialog = open_settings(ann)
    name = dialog.get_by_label("Chat name")
    expect(name).to_be_focused()
    expect(name).to_have_value("Book club")
    name.fill("Reading circle")
    name.press("Enter")
    expect(dialog.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    for page in (ann, ben, cy):
        expect(page.locator(".chat-name")).to_have_text("Reading circle")
        expect(badge_link(page, "Reading circle")).to_be_visible()
        expect(line(page, "Ann Lee renamed the chat to “Reading circle”")).to_be_visible()

    # Ben becomes an admin: a line, his badge, and the settings button on his screen.
    dialog.get_by_role("button", name="Make admin: Ben Ode").click()
    for page in (ann, ben, cy):
        expect(line(page, "Ann Lee made Ben Ode an admin")).to_be_visible()
        expect(member(page, "Ben Ode").locator(".role-badge")).to_have_text("Admin")
    expect(dialog.get_by_role("button", name="Make member: Ben Ode")).to_be_focused()
    expect(settings_button(ben)).to_be_visible()
    expect(settings_button(cy)).to_be_hidden()

    # An admin removes and bans members, but gives no roles, touches no owner, deletes nothing.
    ben_dialog = open_settings(ben)
    expect(ben_dialog.get_by_role("button", name="Remove Cy Young")).to_be_visible()
    expect(ben_dialog.get_by_role("button", name="Ban Cy Young")).to_be_visible()
    expect(ben_dialog.get_by_role("button", name=re.compile("Ann Lee"))).to_have_count(0)
    expect(ben_dialog.get_by_role("button", name=re.compile("^Make"))).to_have_count(0)
    expect(ben_dialog.get_by_role("button", name="Delete chat…")).to_be_hidden()

    # Ben makes the chat invite-only: Ann's open dialog follows, Cy loses the link.
    expect(details(cy).get_by_label("Invite link")).to_be_visible()
    ben_dialog.get_by_role("radio", name=re.compile("^Only people with an invite")).check()
    for page in (ann, ben, cy):
        expect(line(page, "Ben Ode made the chat invite-only")).to_be_visible()
    invite_only = re.compile("^Only people with an invite")
    expect(dialog.get_by_role("radio", name=invite_only)).to_be_checked()
    expect(details(cy)).to_contain_text(
        "Only people with an invite can join. Ask an admin for one.")
    expect(details(cy).get_by_label("Invite link")).to_have_count(0)
    expect(cy.get_by_role("button", name="Copy invite link")).to_be_hidden()
    assert daemon.call("GET", f"/api/chats/{uri}", token=people.cy)["chat"]["join"] == "invite"
    ben.keyboard.press("Escape")
    expect(ben_dialog).to_have_count(0)
    expect(settings_button(ben)).to_be_focused()

    # The link alone lets nobody in now.
    dee = daemon.user("dee", "Dee Dee")
    stranger = open_chat_attempt(new_page, dee, uri)
    refused = re.compile("You cannot open this chat: .*invite only")
    expect(stranger.get_by_text(refused)).to_be_visible()

    # Back to a member: Ben's settings go, live.
    dialog.get_by_role("button", name="Make member: Ben Ode").click()
    expect(line(ben, "Ann Lee made Ben Ode a member")).to_be_visible()
    expect(settings_button(ben)).to_be_hidden()
    expect(member(cy, "Ben Ode").locator(".role-badge")).to_have_count(0)
    # A reload shows the same lines, in place.
    cy.reload()
    expect(line(cy, "Ann Lee made Ben Ode a member")).to_be_visible()
    expect(line(cy, "Ann Lee renamed the chat to “Reading circle”")).to_be_visible()


def open_chat_attempt(new_page: Callable[..., Page], who: str, uri: str) -> Page:
    """`who` opens the chat's link (and may be refused)."""
    page = session(new_page, who, f"/c/{uri}")
    expect(page.locator(".log-wrap[aria-busy]")).to_have_count(0)
    return page


def test_keyboard_only_settings_and_handing_the_chat_over(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Handover", people.ann, people.ben)
    ann = open_chat(new_page, people.ann, uri)
    ben = open_chat(new_page, people.ben, uri)

    # From the invite button, Tab reaches Settings; Enter opens them on the name.
    ann.get_by_role("button", name="Copy invite link").focus()
    ann.keyboard.press("Tab")
    expect(settings_button(ann)).to_be_focused()
    ann.keyboard.press("Enter")
    dialog = ann.get_by_role("dialog", name="Chat settings")
    expect(dialog.get_by_label("Chat name")).to_be_focused()

    # Tab walks the dialog down to Ben's row.
    target = dialog.get_by_role("button", name="Make owner: Ben Ode")
    for _ in range(30):
        if target.evaluate("b => b === document.activeElement"):
            break
        ann.keyboard.press("Tab")
    expect(target).to_be_focused()
    ann.keyboard.press("Enter")
    confirm = ann.get_by_role("dialog", name="Make Ben Ode the owner?")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    ann.keyboard.press("Tab")
    expect(confirm.get_by_role("button", name="Make owner")).to_be_focused()
    ann.keyboard.press("Enter")
    expect(confirm).to_have_count(0)

    for page in (ann, ben):
        expect(line(page, "Ann Lee made Ben Ode the owner")).to_be_visible()
        expect(line(page, "Ann Lee is now an admin")).to_be_visible()
        expect(member(page, "Ben Ode").locator(".role-badge")).to_have_text("Owner")
        expect(member(page, "Ann Lee").locator(".role-badge")).to_have_text("Admin")
    # Ann, an admin now, keeps her settings but gives no roles and deletes nothing.
    expect(dialog.get_by_role("button", name=re.compile("Ben Ode"))).to_have_count(0)
    expect(dialog.get_by_role("button", name="Delete chat…")).to_be_hidden()
    ann.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(settings_button(ann)).to_be_focused()
    ben_dialog = open_settings(ben)
    expect(ben_dialog.get_by_role("button", name="Make member: Ann Lee")).to_be_visible()
    expect(ben_dialog.get_by_role("button", name="Delete chat…")).to_be_visible()
    members = daemon.call("GET", f"/api/chats/{uri}", token=people.ann)["members"]
    assert {m["username"]: m["role"] for m in members} == {"ann": "admin", "ben": "owner"}


# -- invites and the join page -------------------------------------------------------------------

def test_invites_and_the_join_page(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Invite only club", people.ann, people.ben)
    daemon.call("PATCH", f"/api/chats/{uri}", {"join": "invite"}, people.ann)
    ann = open_chat(new_page, people.ann, uri)
    ann.context.grant_permissions(["clipboard-read", "clipboard-write"])
    ben = open_chat(new_page, people.ben, uri)
    expect(ben.get_by_role("button", name="Copy invite link")).to_be_hidden()

    # In an invite-only chat the invite button leads to the invites.
    ann.get_by_role("button", name="Copy invite link").click()
    dialog = ann.get_by_role("dialog", name="Chat settings")
    expires = dialog.get_by_label("Expires")
    expect(expires).to_be_focused()
    expect(dialog.get_by_text("No invites yet.")).to_be_visible()

    # One for a single use within a day, then one with no limits.
    expires.select_option(label="In 1 day")
    uses = dialog.get_by_label("Uses", exact=True)
    uses.fill("0")
    dialog.get_by_role("button", name="Create invite").click()
    expect(dialog.get_by_role("alert").filter(has_text="a whole number")).to_be_visible()
    uses.fill("1")
    dialog.get_by_role("button", name="Create invite").click()
    once = dialog.get_by_label("Invite 1", exact=True)
    expect(once).to_have_value(re.compile(r"^http://[^/]+/i/[A-Za-z0-9_-]{22,64}$"))
    expect(dialog.get_by_text("expires in 24 h · 1 use left · by Ann Lee")).to_be_visible()
    once_url = once.input_value()
    dialog.get_by_role("button", name="Copy invite 1").click()
    expect(dialog.get_by_role("status").filter(has_text="Link copied")).to_be_visible()
    assert ann.evaluate("navigator.clipboard.readText()") == once_url
    expires.select_option(label="Never")
    uses.fill("")
    dialog.get_by_role("button", name="Create invite").click()
    many = dialog.get_by_label("Invite 2", exact=True)
    expect(many).to_be_visible()
    expect(dialog.get_by_text("never expires · no limit on uses · by Ann Lee")).to_be_visible()
    many_url = many.input_value()
    held = daemon.call("GET", f"/api/chats/{uri}/invites", token=people.ann)["invites"]
    assert [(i["url"], i["uses_left"]) for i in held] == [(many_url, None), (once_url, 1)]

    # Dee, signed out, opens the single-use link: sign in first, then the join page.
    daemon.user("dee2", "Dee Dee")
    dee = new_page()
    dee.goto(once_url)
    expect(dee.get_by_text("Sign in to join the chat you were invited to.")).to_be_visible()
    sign_in(dee, "dee2")
    expect(connection(dee)).to_have_text("Live")
    expect(dee).to_have_url(once_url)
    expect(dee.get_by_role("heading", name="Join Invite only club")).to_be_visible()
    expect(dee.get_by_text("Ann Lee invited you to join Invite only club.")).to_be_visible()
    join = dee.get_by_role("button", name="Join chat")
    expect(join).to_be_focused()
    dee.keyboard.press("Enter")
    expect(dee).to_have_url(re.compile(f"/c/{re.escape(uri)}$"))
    expect(dee.locator(".chat-name")).to_have_text("Invite only club")
    expect(badge_link(dee, "Invite only club")).to_be_visible()
    for page in (ann, ben, dee):
        expect(line(page, "Dee Dee joined")).to_be_visible()
    send(dee, "thanks for the invite")
    expect(msg(ann, "thanks for the invite")).to_be_visible()

    # Used up: the next person is told so. A revoked invite stops at once, too.
    daemon.user("eve", "Eve Ng")
    eve = new_page()
    eve.goto(once_url)
    sign_in(eve, "eve")
    expect(eve.get_by_role("heading", name="This invite does not work")).to_be_visible()
    expect(eve.get_by_role("link", name="Back to my chats")).to_be_visible()
    dialog.get_by_role("button", name="Revoke invite 2").click()
    expect(dialog.get_by_label("Invite 2", exact=True)).to_have_count(0)
    expect(dialog.get_by_role("status").filter(has_text="Invite revoked")).to_be_visible()
    assert [i["url"] for i in daemon.call("GET", f"/api/chats/{uri}/invites",
                                         token=people.ann)["invites"]] == []
    eve.goto(many_url)
    expect(eve.get_by_role("heading", name="This invite does not work")).to_be_visible()
    members = daemon.call("GET", f"/api/chats/{uri}", token=people.ann)["members"]
    assert sorted(m["username"] for m in members) == ["ann", "ben", "dee2"]


# -- removal, bans and deletion ------------------------------------------------------------------

def test_a_removed_member_sees_the_chat_close_live_and_a_ban_keeps_them_out(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Quiz night", people.ann, people.ben, people.cy)
    post(daemon, uri, people.ann, "first question")
    ann = open_chat(new_page, people.ann, uri)
    ben = open_chat(new_page, people.ben, uri)
    cy = open_chat(new_page, people.cy, uri)
    ben.get_by_label("Message", exact=True).fill("I was about to say")

    dialog = open_settings(ann)
    dialog.get_by_role("button", name="Remove Ben Ode").click()
    confirm = ann.get_by_role("dialog", name="Remove Ben Ode?")
    expect(confirm).to_contain_text("They can join again with the link.")
    confirm.get_by_role("button", name="Remove").click()

    # Ben: the chat closes with a notice that takes the focus; it leaves his list.
    notice = ben.get_by_role("heading", name="You were removed from Quiz night")
    expect(notice).to_be_visible()
    expect(notice).to_be_focused()
    alert = ben.get_by_role("alert").filter(has_text="You were removed from Quiz night")
    expect(alert).to_be_visible()
    expect(ben.get_by_label("Message", exact=True)).to_have_count(0)
    expect(badge_link(ben, "Quiz night")).to_have_count(0)
    for page in (ann, cy):
        expect(line(page, "Ann Lee removed Ben Ode")).to_be_visible()
        expect(member(page, "Ben Ode")).to_have_count(0)
    expect(dialog.get_by_role("button", name="Remove Ben Ode")).to_have_count(0)

    # Not banned: the link lets him back in; then a ban puts him out for good.
    ben.goto(f"/c/{uri}")
    expect(msg(ben, "first question")).to_be_visible()
    expect(dialog.get_by_role("button", name="Ban Ben Ode")).to_be_visible()
    dialog.get_by_role("button", name="Ban Ben Ode").click()
    confirm = ann.get_by_role("dialog", name="Ban Ben Ode?")
    expect(confirm).to_contain_text("cannot join again")
    confirm.get_by_role("button", name="Ban").click()
    expect(ben.get_by_role("heading", name="You were removed from Quiz night")).to_be_visible()
    for page in (ann, cy):
        expect(line(page, "Ann Lee removed and banned Ben Ode")).to_be_visible()
    ben.goto(f"/c/{uri}")
    expect(ben.get_by_text(re.compile("You cannot open this chat: you are banned"))).to_be_visible()
    assert all(m["username"] != "ben" for m in
               daemon.call("GET", f"/api/chats/{uri}", token=people.ann)["members"])


def test_deleting_asks_for_the_name_and_closes_the_chat_for_everyone(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    uri = chat(daemon, "Old plans", people.ann, people.ben, people.cy)
    elsewhere = chat(daemon, "Still here", people.cy)
    post(daemon, uri, people.ben, "soon gone")
    ann = open_chat(new_page, people.ann, uri)
    ben = open_chat(new_page, people.ben, uri)
    cy = open_chat(new_page, people.cy, elsewhere)  # Old plans is in the background
    expect(badge_link(cy, "Old plans")).to_be_visible()

    dialog = open_settings(ann)
    dialog.get_by_role("button", name="Delete chat…").click()
    confirm = ann.get_by_role("dialog", name="Delete “Old plans”?")
    field = confirm.get_by_label("Type the chat's name, or “delete”, to confirm")
    expect(field).to_be_focused()
    go = confirm.get_by_role("button", name="Delete chat")
    expect(go).to_be_disabled()
    field.fill("Old")
    field.press("Enter")
    expect(confirm).to_be_visible()
    expect(go).to_be_disabled()
    # Cancel changes nothing.
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    expect(dialog.get_by_role("button", name="Delete chat…")).to_be_focused()
    assert daemon.call("GET", f"/api/chats/{uri}", token=people.ann)["chat"]["title"] == "Old plans"

    dialog.get_by_role("button", name="Delete chat…").click()
    field.fill("DELETE")
    expect(go).to_be_enabled()
    field.fill("Old plans")
    expect(go).to_be_enabled()
    field.press("Enter")

    expect(ann.get_by_role("heading", name="You deleted Old plans")).to_be_visible()
    expect(ben.get_by_role("heading", name="Old plans was deleted")).to_be_visible()
    expect(cy.get_by_role("status").filter(has_text="Old plans was deleted")).to_be_visible()
    for page in (ann, ben, cy):
        expect(badge_link(page, "Old plans")).to_have_count(0)
    # Cy's open chat goes on as before.
    send(cy, "nothing happened here")
    with pytest.raises(AssertionError, match="404"):
        daemon.call("GET", f"/api/chats/{uri}", token=people.ann)


# -- direct chats --------------------------------------------------------------------------------

def test_message_opens_the_direct_chat_named_after_the_other_person(
        new_page: Callable[..., Page], daemon: Daemon, people: People) -> None:
    group = chat(daemon, "Meeting place", people.ann, people.ben)
    ann = open_chat(new_page, people.ann, group)
    ben = session(new_page, people.ben, "/")
    expect(details(ann).get_by_role("button", name="Message Ann Lee")).to_have_count(0)  # me

    details(ann).get_by_role("button", name="Message Ben Ode").click()
    expect(ann).not_to_have_url(re.compile(re.escape(group)))
    expect(ann).to_have_url(re.compile(r"/c/[A-Za-z0-9_-]+$"))
    direct = ann.url.rsplit("/", 1)[1]
    expect(ann.locator(".chat-name")).to_have_text("Ben Ode")
    expect(chat_link(ann, "Ben Ode")).to_have_attribute("aria-current", "page")
    # No title, roles, settings or invites in a direct chat; no "Message" to each other.
    expect(settings_button(ann)).to_be_hidden()
    expect(ann.get_by_role("button", name="Copy invite link")).to_be_hidden()
    expect(details(ann).get_by_label("Invite link")).to_have_count(0)
    expect(details(ann).locator(".role-badge")).to_have_count(0)
    expect(details(ann).get_by_role("button", name=re.compile("^Message"))).to_have_count(0)
    send(ann, "hi Ben, just us")

    # Ben's tab learns of the new chat live: the server nudges his sockets
    # (chats_changed), with no focus, no reload and no poll.
    expect(chat_link(ben, "Ann Lee")).to_have_accessible_name(re.compile("1 unread"),
                                                             timeout=3000)
    chat_link(ben, "Ann Lee").click()
    expect(ben.locator(".chat-name")).to_have_text("Ann Lee")
    expect(msg(ben, "hi Ben, just us")).to_be_visible()
    expect(ben.locator(".chat-here")).to_have_text("online")
    expect(ann.locator(".chat-here")).to_have_text("online")

    # Asking again from the group chat opens the same one.
    badge_link(ann, "Meeting place").click()
    details(ann).get_by_role("button", name="Message Ben Ode").click()
    expect(ann).to_have_url(re.compile(f"/c/{re.escape(direct)}$"))
    expect(chat_link(ann, "Ben Ode")).to_have_count(1)
    chats = daemon.call("GET", "/api/chats", token=people.ann)["chats"]
    assert [c["uri"] for c in chats if c["kind"] == "direct"] == [direct]


# -- accessibility -------------------------------------------------------------------------------

WIDTHS = "() => [document.documentElement.scrollWidth, innerWidth]"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations_when_running_a_chat(
        axe_page: Callable[..., Page], daemon: Daemon, people: People, scheme: str) -> None:
    uri = chat(daemon, f"Running ({scheme})", people.ann, people.ben, people.cy)
    doomed = chat(daemon, f"Doomed ({scheme})", people.ann, people.cy)
    daemon.call("PATCH", f"/api/chats/{uri}", {"title": f"Run well ({scheme})"}, people.ann)
    ben_id = next(m["id"] for m in daemon.call("GET", f"/api/chats/{uri}", token=people.ann)
                  ["members"] if m["username"] == "ben")
    daemon.call("PUT", f"/api/chats/{uri}/members/{ben_id}/role", {"role": "admin"}, people.ann)
    daemon.call("POST", f"/api/chats/{uri}/invites", {"expires_in": 3600, "max_uses": 5},
                people.ann)
    code = daemon.call("POST", f"/api/chats/{uri}/invites", {}, people.ann)["invite"]["code"]
    daemon.call("POST", "/api/direct", {"username": "ben"}, people.cy)
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
        page.add_init_script(
            f"sessionStorage.setItem('chatire.token', {json.dumps(people.ann)})")
        page.goto(f"/c/{uri}")
        expect(line(page, "Ann Lee made Ben Ode an admin")).to_be_visible()
        expect(settings_button(page)).to_be_visible()
        check(page, f"{width}: chat with role lines")
        dialog = open_settings(page)
        expect(dialog.get_by_label("Invite 2", exact=True)).to_be_visible()
        check(page, f"{width}: settings")
        dialog.get_by_role("button", name="Delete chat…").click()
        expect(page.get_by_role("dialog", name=re.compile("^Delete"))).to_be_visible()
        check(page, f"{width}: typed confirmation")
        page.keyboard.press("Escape")
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)

    # Cy: a direct chat in the list with its presence, the join page, a toast, a notice.
    cy = axe_page(scheme)
    cy.add_init_script(f"sessionStorage.setItem('chatire.token', {json.dumps(people.cy)})")
    cy.goto(f"/i/{code}")
    expect(cy.get_by_role("button", name="Join chat")).to_be_visible()
    expect(cy.get_by_role("navigation", name="Chats").get_by_text("Ben Ode")).to_be_visible()
    check(cy, "join page and a direct chat")
    daemon.call("DELETE", f"/api/chats/{doomed}", None, people.ann)
    expect(cy.get_by_role("status").filter(has_text="was deleted")).to_be_visible()
    check(cy, "toast")
    cy.goto(f"/c/{uri}")
    expect(cy.locator(".chat-name")).to_have_text(f"Run well ({scheme})")
    cy_id = next(m["id"] for m in daemon.call("GET", f"/api/chats/{uri}", token=people.ann)
                 ["members"] if m["username"] == "cy")
    daemon.call("DELETE", f"/api/chats/{uri}/members/{cy_id}", None, people.ann)
    expect(cy.get_by_role("heading", name=re.compile("You were removed"))).to_be_visible()
    check(cy, "removed notice")
    assert found == {}
