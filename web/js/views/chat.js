/** The chat pane: header (title, members, invite link), message log, typing line, alerts, composer. */
import { h, labelled, replaceChildren } from "/js/dom.js";
import { chatLink } from "/js/router.js";
import { chatTitle } from "/js/views/chatlist.js";
import { initials, hue } from "/js/views/layout.js";
import { MessageLog } from "/js/views/messages.js";
import { Composer } from "/js/views/composer.js";

const TYPING_SHOW_MS = 4000;

export class ChatView {
  /**
   * @param {string} uri
   * @param {{me: object, onLoadOlder, onRetry, onDiscard, onSend, onTyping, onReachBottom, actions}} handlers
   */
  constructor(uri, handlers) {
    this.uri = uri;
    this.me = handlers.me;
    this.typers = new Map(); // user id -> {name, timer}
    this.title = h("h2", { class: "chat-name", text: "Loading…" });
    this.membersButton = h("button", {
      type: "button", class: "ghost", text: "Members",
      attrs: { "aria-expanded": "false", "aria-controls": `details-${uri}` },
      on: { click: () => this.toggleDetails() },
    });
    // Its name stays "Copy invite link" at every width; narrow screens just show "Invite".
    this.copyButton = h("button", {
      type: "button", class: "ghost", on: { click: () => this.copyInvite() },
    }, h("span", { class: "full-label", text: "Copy invite link" }),
    h("span", { class: "short-label", text: "Invite", attrs: { "aria-hidden": "true" } }));
    this.copyNote = h("span", { class: "copy-note small", attrs: { "aria-live": "polite" } });
    this.linkField = h("input", { type: "text", readOnly: true, value: chatLink(uri), class: "invite-field" });
    this.memberList = h("ul", { class: "members" });
    this.details = h("aside", { id: `details-${uri}`, class: "details", hidden: true, attrs: { "aria-label": "Chat details" } },
      h("h2", { class: "small-heading", text: "Invite" }),
      labelled("Invite link", this.linkField,
        "Anyone signed in who has this link can join.").wrap,
      h("h2", { class: "small-heading", text: "Members" }),
      this.memberList);
    this.linkField.addEventListener("focus", () => this.linkField.select());

    this.log = new MessageLog(handlers);
    this.typing = h("p", { class: "typing small", attrs: { "aria-live": "polite" } });
    this.alertLine = h("p", { class: "form-error chat-alert small", attrs: { role: "alert" } });
    this.composer = new Composer({ onSend: handlers.onSend, onTyping: handlers.onTyping });

    const header = h("header", { class: "chat-head" },
      h("a", { href: "/", class: "back ghost button", dataset: { route: "" }, attrs: { "aria-label": "Back to chats" } },
        h("span", { attrs: { "aria-hidden": "true" }, text: "←" })),
      this.title,
      h("div", { class: "chat-actions" }, this.copyNote, this.copyButton, this.membersButton));
    this.el = h("section", { class: "chat", attrs: { "aria-labelledby": `title-${uri}` } },
      header,
      h("div", { class: "chat-body" },
        h("div", { class: "chat-main" }, this.log.el, this.typing, this.alertLine, this.composer.el),
        this.details));
    this.title.id = `title-${uri}`;
    if (window.matchMedia("(min-width: 1100px)").matches) this.toggleDetails(true);
  }

  setChat(chat, members) {
    this.title.textContent = chatTitle(chat);
    if (members) this.setMembers(members);
  }

  setTitle(title) {
    this.title.textContent = chatTitle({ title });
  }

  /** The names of the members with these ids, e.g. for who reacted. */
  namesOf(ids) {
    const byId = new Map((this.members || []).map((m) => [m.id, m.display_name || m.username]));
    return ids.map((id) => (id === this.me.id ? "You" : byId.get(id))).filter(Boolean).join(", ");
  }

  /** Say that something went wrong (an action the server refused), for a few seconds. */
  alert(text) {
    this.alertLine.textContent = text;
    clearTimeout(this.alertTimer);
    this.alertTimer = setTimeout(() => { this.alertLine.textContent = ""; }, 6000);
  }

  setMembers(members) {
    this.members = members;
    this.membersButton.textContent = `Members (${members.length})`;
    replaceChildren(this.memberList, ...members.map((m) => {
      const name = m.display_name || m.username;
      return h("li", {},
        h("span", { class: "avatar", text: initials(name), attrs: { "aria-hidden": "true" }, style: { "--hue": hue(m.id) } }),
        h("span", { class: "member-name" }, name,
          m.id === this.me.id ? h("span", { class: "muted", text: " (you)" }) : null),
        h("span", { class: "muted small handle", text: `@${m.username}` }));
    }));
  }

  hasMember(userId) {
    return Boolean(this.members && this.members.some((m) => m.id === userId));
  }

  toggleDetails(force) {
    const open = force ?? this.details.hidden;
    this.details.hidden = !open;
    this.membersButton.setAttribute("aria-expanded", String(open));
  }

  async copyInvite() {
    const link = chatLink(this.uri);
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
      await navigator.clipboard.writeText(link);
      this.flash("Invite link copied");
    } catch {
      // Fallback: show the read-only field with the link selected, ready for Ctrl+C.
      this.toggleDetails(true);
      this.linkField.focus();
      this.linkField.select();
      this.flash("Press Ctrl+C to copy the selected link");
    }
  }

  flash(text) {
    this.copyNote.textContent = text;
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => { this.copyNote.textContent = ""; }, 4000);
  }

  /** Someone is typing: show it for a few seconds. */
  showTyping(user) {
    if (user.id === this.me.id) return;
    const old = this.typers.get(user.id);
    if (old) clearTimeout(old.timer);
    const timer = setTimeout(() => this.clearTyping(user.id), TYPING_SHOW_MS);
    this.typers.set(user.id, { name: user.display_name || user.username, timer });
    this.renderTyping();
  }

  clearTyping(userId) {
    const entry = this.typers.get(userId);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.typers.delete(userId);
    this.renderTyping();
  }

  renderTyping() {
    const names = [...this.typers.values()].map((t) => t.name);
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    this.typing.textContent = text;
  }

  destroy() {
    for (const t of this.typers.values()) clearTimeout(t.timer);
    clearTimeout(this.flashTimer);
    clearTimeout(this.alertTimer);
    this.el.remove();
  }
}
