/** The chat pane: header (name, who is here, settings, members, invite link), message log, typing line, alerts, composer. */
import { h, labelled, replaceChildren, uid } from "/js/dom.js";
import { seenText } from "/js/presence.js";
import { chatLink } from "/js/router.js";
import { chatName } from "/js/views/chatlist.js";
import { copyText } from "/js/views/copy.js";
import { memberButton, memberName, renderMembers } from "/js/views/members.js";
import { MessageLog } from "/js/views/messages.js";
import { Composer } from "/js/views/composer.js";

const TYPING_SHOW_MS = 4000;
/** The per-chat level select: value ("" is my default) and words. */
const LEVEL_CHOICES = [["", "Default"], ["all", "All messages"], ["mentions", "Mentions only"], ["none", "Mute"]];
const LEVEL_WORDS = { all: "all messages", mentions: "mentions only", none: "muted" };
const LEVEL_HINTS = {
  all: "You hear of every new message here while you are away.",
  mentions: "You hear only of messages that mention you.",
  none: "Nothing from this chat: no sound, no notifications.",
};
const RUNS = new Set(["owner", "admin"]);

export class ChatView {
  /**
   * @param {string} uri
   * @param {{me: object, onLoadOlder, onRetry, onDiscard, onSend, onTyping, onReachBottom, actions,
   *          onSettings: (focus: string) => void, onMessage: (member) => void,
   *          onLevel: (level: string|null) => void,
   *          presenceOf: (userId: number) => {online, lastSeen}}} handlers
   */
  constructor(uri, handlers) {
    this.uri = uri;
    this.me = handlers.me;
    this.handlers = handlers;
    this.chat = null;
    this.role = "member";
    this.typers = new Map(); // user id -> {name, timer}
    this.title = h("h2", { class: "chat-name", text: "Loading…" });
    this.here = h("p", { class: "chat-here small" });
    this.membersButton = h("button", {
      type: "button", class: "ghost", text: "Members",
      attrs: { "aria-expanded": "false", "aria-controls": `details-${uri}` },
      on: { click: () => this.toggleDetails() },
    });
    // Its name stays "Copy invite link" at every width; narrow screens just show "Invite".
    this.copyButton = h("button", {
      type: "button", class: "ghost", hidden: true, on: { click: () => this.copyInvite() },
    }, h("span", { class: "full-label", text: "Copy invite link" }),
    h("span", { class: "short-label", text: "Invite", attrs: { "aria-hidden": "true" } }));
    // Admins and the owner of a group chat: its settings. Narrow screens show a gear.
    this.settingsButton = h("button", {
      type: "button", class: "ghost", hidden: true, attrs: { "aria-haspopup": "dialog" },
      on: { click: () => handlers.onSettings("name") },
    }, h("span", { class: "full-label", text: "Settings" }),
    h("span", { class: "short-label", text: "⚙", attrs: { "aria-hidden": "true" } }));
    this.copyNote = h("span", { class: "copy-note small", attrs: { "aria-live": "polite" } });
    this.linkField = h("input", { type: "text", readOnly: true, value: chatLink(uri), class: "invite-field" });
    this.linkField.addEventListener("focus", () => this.linkField.select());
    this.buildLevel();
    this.memberList = h("ul", { class: "members" });
    this.invitePart = h("div", { class: "invite-part" });
    this.details = h("aside", { id: `details-${uri}`, class: "details", hidden: true, attrs: { "aria-label": "Chat details" } },
      this.levelPart,
      this.invitePart,
      h("h2", { class: "small-heading", text: "Members" }),
      this.memberList);

    this.log = new MessageLog(handlers);
    this.typing = h("p", { class: "typing small", attrs: { "aria-live": "polite" } });
    this.alertLine = h("p", { class: "form-error chat-alert small", attrs: { role: "alert" } });
    this.composer = new Composer({
      onSend: handlers.onSend, onTyping: handlers.onTyping,
      mentionable: () => (this.members || []).filter((m) => m.id !== this.me.id),
    });

    const header = h("header", { class: "chat-head" },
      h("a", { href: "/", class: "back ghost button", dataset: { route: "" }, attrs: { "aria-label": "Back to chats" } },
        h("span", { attrs: { "aria-hidden": "true" }, text: "←" })),
      h("div", { class: "chat-heading" }, h("div", { class: "chat-title-row" }, this.title, this.mutedTag), this.here),
      h("div", { class: "chat-actions" }, this.copyNote, this.copyButton, this.settingsButton, this.membersButton));
    this.el = h("section", { class: "chat", attrs: { "aria-labelledby": `title-${uri}` } },
      header,
      h("div", { class: "chat-body" },
        h("div", { class: "chat-main" }, this.log.el, this.typing, this.alertLine, this.composer.el),
        this.details));
    this.title.id = `title-${uri}`;
    if (window.matchMedia("(min-width: 1100px)").matches) this.toggleDetails(true);
  }

  /** The chat's own notification level: a select in the details (Default / All / Mentions / Mute). */
  buildLevel() {
    const headingId = uid("level");
    this.levelSelect = h("select", {
      name: "level", class: "level-select", disabled: true,
      attrs: { "aria-labelledby": headingId, "aria-describedby": `${headingId}-note` },
      on: { change: () => this.handlers.onLevel(this.levelSelect.value || null) },
    }, ...LEVEL_CHOICES.map(([value, text]) => h("option", { value, text })));
    this.levelNote = h("p", { id: `${headingId}-note`, class: "hint level-note", attrs: { role: "status" } });
    this.levelError = h("p", { class: "form-error small", attrs: { role: "alert" } });
    this.levelPart = h("div", { class: "level-part" },
      h("h2", { id: headingId, class: "small-heading", text: "Notifications" }),
      this.levelSelect, this.levelNote, this.levelError);
    // In the header: a struck bell while the chat is muted.
    this.mutedTag = h("span", { class: "muted-tag", hidden: true, title: "Muted" },
      h("span", { class: "bell-icon off", attrs: { "aria-hidden": "true" } }), h("span", { class: "sr-only", text: "muted" }));
  }

  /**
   * Show my level for the chat: `own` ("all", "mentions", "none", null for my default, or
   * undefined while not known) and my default level.
   */
  setLevel(own, defaultLevel) {
    const known = own !== undefined;
    this.levelSelect.disabled = !known;
    if (known) this.levelSelect.value = own || "";
    this.levelSelect.options[0].textContent = `Default (${LEVEL_WORDS[defaultLevel] || defaultLevel})`;
    const level = own || defaultLevel;
    this.levelNote.textContent = known ? LEVEL_HINTS[level] || "" : "Loading…";
    this.mutedTag.hidden = !(known && level === "none");
  }

  /** A level change the server refused, or the level could not be loaded: say why. */
  levelFailed(text) {
    this.levelError.textContent = text;
    if (text && this.levelSelect.disabled) this.levelNote.textContent = "";
  }

  get direct() {
    return Boolean(this.chat && this.chat.kind === "direct");
  }

  /** The other person of a direct chat (from the members), or null. */
  get peer() {
    return this.direct ? (this.members || []).find((m) => m.id !== this.me.id) || null : null;
  }

  /** The chat as the server has it now (and its members, when fetched); my role in it. */
  setChat(chat, members, role = this.role) {
    this.chat = chat;
    this.role = role;
    if (members) this.members = members;
    this.title.textContent = chatName(chat, this.peer);
    this.copyButton.hidden = this.direct || (chat.join === "invite" && !RUNS.has(role));
    this.settingsButton.hidden = this.direct || !RUNS.has(role);
    this.renderInvite();
    if (this.members) this.setMembers(this.members);
  }

  setTitle(title) {
    if (this.chat) this.setChat({ ...this.chat, title });
  }

  setRole(role) {
    if (this.chat) this.setChat(this.chat, null, role);
  }

  /** The details' invite part: the link (anyone may share it), or how an invite-only chat takes people. */
  renderInvite() {
    const chat = this.chat;
    if (!chat || this.direct) {
      replaceChildren(this.invitePart);
      return;
    }
    const runs = RUNS.has(this.role);
    if (chat.join !== "invite") {
      if (this.linkField.parentNode?.parentNode !== this.invitePart) {
        replaceChildren(this.invitePart,
          h("h2", { class: "small-heading", text: "Invite" }),
          labelled("Invite link", this.linkField, "Anyone signed in who has this link can join.").wrap);
      }
      return;
    }
    replaceChildren(this.invitePart,
      h("h2", { class: "small-heading", text: "Invite" }),
      h("p", { class: "hint invite-only", text: runs
        ? "Only people with an invite can join. Make one in the settings."
        : "Only people with an invite can join. Ask an admin for one." }),
      runs ? h("button", { type: "button", class: "ghost small-button", text: "Manage invites",
        on: { click: () => this.handlers.onSettings("invites") } }) : null);
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
    if (this.chat) this.title.textContent = chatName(this.chat, this.peer);
    this.renderPresence();
  }

  /** Redraw who is online: the member list's dots and words, and "N here" (a direct chat: the other person). */
  renderPresence() {
    const members = this.members || [];
    const presenceOf = this.handlers.presenceOf;
    renderMembers(this.memberList, members, {
      me: this.me, presenceOf, roles: !this.direct,
      buttons: (m) => (this.direct || m.id === this.me.id ? []
        : [memberButton("Message", `Message ${memberName(m)}`, `message-${m.id}`, () => this.handlers.onMessage(m))]),
    });
    if (!this.chat) return;
    const peer = this.peer;
    if (this.direct) {
      this.here.textContent = peer ? seenText(presenceOf(peer.id)) : "";
      this.here.classList.toggle("online", Boolean(peer && presenceOf(peer.id).online));
    } else {
      const n = members.filter((m) => presenceOf(m.id).online).length;
      this.here.textContent = members.length ? `${n} here` : "";
      this.here.classList.toggle("online", n > 0);
    }
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
    if (this.chat && this.chat.join === "invite") {
      this.handlers.onSettings("invites"); // the chat's link lets nobody in: an invite does
      return;
    }
    const copied = await copyText(chatLink(this.uri), null, () => {});
    if (copied) this.flash("Invite link copied");
    else {
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
