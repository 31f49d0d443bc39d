/** The open chat: join if needed, load history over HTTP, follow its timeline, send, edit, delete, react, reply. */
import { api, describe } from "/js/api.js";
import { limits } from "/js/config.js";
import { h, keepChars } from "/js/dom.js";
import { LINE_KINDS, normalizeMessage } from "/js/events.js";
import { navigate } from "/js/router.js";
import { attentive, chime } from "/js/notify.js";
import { ChatView } from "/js/views/chat.js";
import { confirmDialog } from "/js/views/confirm.js";
import { openPicker } from "/js/views/picker.js";
import { SettingsDialog } from "/js/views/settings.js";

const PAGE = 50;
const STALE_AFTER = 200;
const EVENTS_PAGE = 500;

/** A random UUID; crypto.randomUUID needs a secure context, so fall back to getRandomValues. */
export function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class ChatRoom {
  /**
   * @param {string} uri
   * @param {{me, socket, store, onActivity: (uri, seq) => void, onJoined: () => void,
   *          markRead: (uri, seq) => void, follow: (uri) => void, chatInfo: (uri) => object|null,
   *          isMember: (uri) => Promise<boolean|null>, presence: Presence, peers: Peers,
   *          openDirect: (user) => Promise<void>, deleteChat: (uri) => Promise<void>,
   *          onChat: (chat) => void, levels: Levels}} ctx
   */
  constructor(uri, ctx) {
    this.uri = uri;
    this.ctx = ctx;
    this.closed = false;
    this.ready = false;
    this.member = false; // known to be a member (so the chat may be followed)
    this.olderPromise = null;
    this.catchingUp = null;
    this.role = (ctx.chatInfo(uri) || {}).role || "member";
    this.timeline = ctx.store.timeline(uri);
    const me = ctx.me;
    this.view = new ChatView(uri, {
      me,
      onLoadOlder: () => this.loadOlder(),
      onRetry: (id) => this.retry(id),
      onDiscard: (id) => this.discard(id),
      onSend: (text, replyTo) => this.send(text, replyTo),
      onTyping: () => ctx.socket.typing(uri),
      onReachBottom: () => this.markSeen(),
      onSettings: (focus) => this.openSettings(focus),
      onMessage: (member) => this.message(member),
      onLevel: (level) => this.setLevel(level),
      presenceOf: (id) => ctx.presence.of(uri, id),
      actions: {
        canEdit: (m) => m.user.id === me.id && !m.deleted,
        canDelete: (m) => !m.deleted && (m.user.id === me.id || this.role === "admin" || this.role === "owner"),
        quoteOf: (seq) => this.quoteOf(seq),
        messageAt: (seq) => this.timeline.message(seq),
        namesOf: (ids) => this.view.namesOf(ids),
        onReact: (seq, button) => this.pickReaction(seq, button),
        onToggle: (seq, emoji, mine) => this.toggleReaction(seq, emoji, mine),
        onReply: (seq) => this.replyTo(seq),
        onEdit: (seq) => this.edit(seq),
        onDelete: (seq) => this.remove(seq),
        onJump: (seq) => this.jumpTo(seq),
      },
    });
    // My notification level here: shown in the details, followed as it changes (here or the default).
    this.onLevels = (event) => {
      if (event.detail.chat === uri || event.detail.chat === null) this.showLevel();
    };
    ctx.levels.addEventListener("change", this.onLevels);
    this.showLevel();
  }

  showLevel() {
    this.view.setLevel(this.ctx.levels.own(this.uri), this.ctx.levels.defaultLevel);
  }

  /** Ask for my level here (once the chat is known to be mine). */
  async loadLevel() {
    try {
      await this.ctx.levels.load(this.uri);
    } catch (err) {
      if (!this.closed) this.view.levelFailed(`Could not load the notification setting: ${describe(err)}`);
    }
  }

  /** The level select changed: save it; on a refusal, show the saved one again and why. */
  async setLevel(level) {
    this.view.levelFailed("");
    try {
      await this.ctx.levels.save(this.uri, level);
    } catch (err) {
      if (this.closed) return;
      this.showLevel();
      this.view.levelFailed(`Could not change the notifications: ${describe(err)}`);
    }
  }

  async open() {
    try {
      const info = await this.loadInfo();
      if (this.closed) return;
      const self = this.takeChat(info);
      const listed = this.ctx.chatInfo(this.uri) || {};
      const readSeq = self && typeof self.read_seq === "number" ? self.read_seq : listed.read_seq;
      this.member = true;
      this.ctx.follow(this.uri);
      this.loadLevel();
      const t = this.timeline;
      if (t.loaded && info.chat.last_seq - (t.resumeSeq ?? 0) > STALE_AFTER) t.reset();
      if (!t.loaded) {
        const asOf = info.chat.last_seq; // the page shows at least every event up to here
        const page = await api.messages(this.uri, { limit: PAGE });
        if (this.closed) return;
        t.load(page, asOf);
      }
      await this.catchUp();
      if (this.closed) return;
      this.view.log.renderAll(t);
      this.view.log.setDivider(this.firstUnread(readSeq));
      this.ready = true;
      this.markSeen();
      this.ctx.onActivity(this.uri, t.maxSeq);
      this.view.composer.focus();
      this.fillViewport();
    } catch (err) {
      if (this.closed) return;
      this.fail(err);
    }
  }

  /** GET the chat; a non-member with the link joins first (the link is the invitation). */
  async loadInfo() {
    if ((await this.ctx.isMember(this.uri)) === false) {
      await api.join(this.uri);
      this.ctx.onJoined();
      return api.chat(this.uri);
    }
    try {
      return await api.chat(this.uri);
    } catch (err) {
      if (err.code !== "forbidden" && err.code !== "not_found") throw err;
      await api.join(this.uri);
      this.ctx.onJoined();
      return api.chat(this.uri);
    }
  }

  /** The seq of the first message after `readSeq` written by someone else, or null. */
  firstUnread(readSeq) {
    if (typeof readSeq !== "number") return null;
    const t = this.timeline;
    for (let i = t.indexAfter(readSeq); i < t.items.length; i += 1) {
      const item = t.items[i];
      if (item.kind === "message" && !item.deleted && item.user.id !== this.ctx.me.id) return item.seq;
    }
    return null;
  }

  /** `GET /api/chats/{uri}`'s reply: the chat, its members, my role; returns my own member entry. */
  takeChat(info) {
    const self = (info.members || []).find((m) => m.id === this.ctx.me.id);
    if (self && self.role) this.role = self.role;
    this.chat = info.chat;
    this.ctx.presence.members(this.uri, info.members);
    if (info.chat.kind === "direct") this.ctx.peers.fromMembers(this.uri, info.members);
    this.view.setChat(info.chat, info.members, this.role);
    this.settings?.update();
    return self;
  }

  fail(err) {
    const home = h("a", { href: "/", class: "button primary", dataset: { route: "" }, text: "Back to my chats" });
    const text = err.code === "not_found"
      ? "This chat does not exist. Check the invite link."
      : err.code === "forbidden"
        ? `You cannot open this chat: ${describe(err)}. An invite link from one of its admins may let you in.`
        : `Cannot open this chat: ${describe(err)}`;
    this.view.title.textContent = err.code === "not_found" ? "Chat not found" : "Chat unavailable";
    const retry = err.code === "not_found" || err.code === "forbidden" ? null
      : h("button", { type: "button", class: "ghost", text: "Try again", on: { click: () => navigate(location.pathname) } });
    this.view.log.renderError(text, home, retry);
  }

  close() {
    this.closed = true;
    this.ctx.levels.removeEventListener("change", this.onLevels);
    clearTimeout(this.gapTimer);
    this.settings?.close();
    this.view.destroy();
  }

  /** Whether the reader is looking at the newest part of this chat right now. */
  seeing() {
    return this.ready && !this.closed && attentive() && this.view.log.rendered && this.view.log.atBottom();
  }

  /** A server frame about this chat. */
  onFrame(frame) {
    if (frame.type === "message" || frame.type === "event") this.onTimelineFrame(frame);
    else if (frame.type === "typing" && frame.user) this.view.showTyping(frame.user);
    else if (frame.type === "error" && !frame.client_id) this.onError(frame);
  }

  onError(frame) {
    if (frame.code === "invalid" && this.ready) {
      // Our resume point is past the chat's end (e.g. the server lost data): start over
      // (the shell has reset the timeline and follows the chat afresh).
      this.ready = false;
      this.open();
    } else if (frame.code === "forbidden" || frame.code === "not_found") {
      this.fail({ code: frame.code, message: frame.message });
    }
  }

  onTimelineFrame(frame) {
    const out = this.timeline.receive(frame);
    this.render(out);
    if (!this.ready) return;
    if (frame.type === "message" && this.timeline.has(frame.seq)) {
      this.view.clearTyping(frame.user.id);
      if (!this.view.hasMember(frame.user.id)) this.refreshMembers();
      if (frame.user.id !== this.ctx.me.id && !attentive() && out.changes.length
          && this.ctx.levels.effectiveNow(this.uri) !== "none") chime(); // a muted chat stays quiet
    }
    this.markSeen();
    if (this.timeline.hasGap) this.scheduleGapFill();
  }

  /** Show what `Timeline.receive` changed: new items, redrawn messages, chat-wide events. */
  render(out) {
    for (const entry of out.settled) this.view.log.removePending(entry.client_id);
    if (!this.ready) return;
    const added = out.changes.filter((c) => c.added).map((c) => c.added);
    this.view.log.insert(added, this.timeline, { live: true });
    for (const change of out.changes) {
      if (change.updated) {
        const message = this.timeline.message(change.updated);
        this.view.log.update(change.updated, message);
        if (message && message.deleted && this.view.composer.replyTo === change.updated) this.view.composer.clearReply();
      } else if (change.event) this.onChatEvent(change.event);
    }
    if (added.some((item) => LINE_KINDS.has(item.kind))) this.refreshMembers();
  }

  /** A chat-wide event (rename, settings, role, remove): header, members and settings follow it. */
  onChatEvent(event) {
    if (!this.chat) return;
    if (event.kind === "rename") this.chat = { ...this.chat, title: event.title };
    else if (event.kind === "settings") this.chat = { ...this.chat, join: event.join };
    else if (event.kind === "role" && event.subject && event.subject.id === this.ctx.me.id) {
      this.role = event.role;
      this.view.log.refreshAll(); // which messages I may delete
    }
    if (event.kind === "role" || event.kind === "remove") this.applyMember(event);
    this.view.setChat(this.chat, null, this.role);
    this.settings?.update();
    if (event.kind === "role" || event.kind === "remove") this.refreshMembers();
  }

  /** Apply a role or remove event to the members shown, until the fresh list comes. */
  applyMember(event) {
    const members = this.view.members;
    if (!members || !event.subject) return;
    if (event.kind === "remove") this.view.members = members.filter((m) => m.id !== event.subject.id);
    else this.view.members = members.map((m) => (m.id === event.subject.id ? { ...m, role: event.role } : m));
  }

  /** Someone came online or went offline here. */
  onPresence() {
    if (this.closed) return;
    this.view.renderPresence();
    this.settings?.update();
  }

  /** Open the settings dialog (admins and the owner of a group chat). */
  openSettings(focus = "name") {
    if (this.settings || !this.chat) return;
    const opener = document.activeElement;
    this.settings = new SettingsDialog({
      uri: this.uri,
      me: this.ctx.me,
      state: () => ({ chat: this.chat, members: this.view.members, role: this.role }),
      presenceOf: (id) => this.ctx.presence.of(this.uri, id),
      onChat: (chat) => {
        this.chat = { ...this.chat, ...chat };
        this.view.setChat(this.chat, null, this.role);
        this.ctx.onChat(this.chat);
      },
      onMembers: () => this.refreshMembers(),
      onDelete: () => this.ctx.deleteChat(this.uri),
      onClosed: () => {
        this.settings = null;
        if (!this.closed && opener instanceof HTMLElement && opener.isConnected) opener.focus();
      },
    });
    this.settings.open(focus);
  }

  /** "Message" next to a member: the direct chat with them. */
  async message(member) {
    try {
      await this.ctx.openDirect(member);
    } catch (err) {
      this.view.alert(`Could not open a direct chat with ${member.display_name || member.username}: ${describe(err)}`);
    }
  }

  /** An event from one of our HTTP calls: applied now if it is next, else when its turn comes. */
  applyOwn(event) {
    if (!event) return;
    this.render(this.timeline.receive({ type: "event", ...event }));
    if (this.timeline.hasGap) this.scheduleGapFill();
  }

  /** `sent`: the send is stored; show it confirmed until (or unless) its echo arrives. */
  onSent(frame) {
    const entry = this.timeline.confirm(frame.client_id, frame.seq, frame.id);
    if (!entry) return;
    if (entry.status === "settled") this.view.log.removePending(frame.client_id);
    else this.view.log.upsertPending(entry);
    this.ctx.onActivity(this.uri, frame.seq);
  }

  onSendFailed(frame) {
    const entry = this.timeline.fail(frame.client_id, frame.message || frame.code);
    if (entry) this.view.log.upsertPending(entry);
  }

  send(text, replyTo = null) {
    const entry = this.timeline.addPending({
      client_id: newClientId(), message: text, reply_to: replyTo, created_at: new Date().toISOString(), user: this.ctx.me,
    });
    this.view.log.upsertPending(entry);
    this.ctx.socket.sendMessage(this.uri, text, entry.client_id, replyTo);
  }

  retry(clientId) {
    const entry = this.timeline.pending.get(clientId);
    if (!entry) return;
    Object.assign(entry, { status: "pending", error: null });
    this.view.log.upsertPending(entry);
    this.ctx.socket.sendMessage(this.uri, entry.message, clientId, entry.reply_to);
  }

  discard(clientId) {
    this.timeline.dropPending(clientId);
    this.ctx.socket.discard(clientId);
    this.view.log.removePending(clientId);
  }

  // -- actions on a message -------------------------------------------------------------------

  replyTo(seq) {
    const message = this.timeline.message(seq);
    if (message && !message.deleted) this.view.composer.setReply(seq, message);
  }

  edit(seq) {
    const message = this.timeline.message(seq);
    if (!message || message.deleted || message.user.id !== this.ctx.me.id) return;
    this.view.log.startEdit(seq, message, {
      max: limits.message_chars,
      keep: keepChars,
      save: async (text) => {
        try {
          this.applyOwn((await api.edit(this.uri, seq, text)).event);
        } catch (err) {
          throw new Error(describe(err));
        }
      },
    });
  }

  async remove(seq) {
    const message = this.timeline.message(seq);
    if (!message || message.deleted) return;
    const mine = message.user.id === this.ctx.me.id;
    const ok = await confirmDialog({
      title: "Delete this message?",
      text: mine
        ? "It is erased for everyone in the chat. This cannot be undone."
        : `You are deleting a message by ${message.user.display_name || message.user.username}. It is erased for everyone in the chat. This cannot be undone.`,
      confirmLabel: "Delete",
      danger: true,
    });
    if (this.closed) return;
    if (ok) {
      try {
        this.applyOwn((await api.deleteMessage(this.uri, seq)).event);
      } catch (err) {
        this.view.alert(`Could not delete the message: ${describe(err)}`);
      }
    }
    this.view.log.focusMessage(seq); // where the dialog was opened from
  }

  pickReaction(seq, button) {
    const message = this.timeline.message(seq);
    if (!message || message.deleted) return;
    if (button.getAttribute("aria-expanded") === "true") return;
    openPicker(button.closest(".msg-actions"), button, {
      current: message.reactions,
      meId: this.ctx.me.id,
      onPick: (emoji, mine) => this.toggleReaction(seq, emoji, mine),
    });
  }

  async toggleReaction(seq, emoji, mine) {
    try {
      const reply = mine ? await api.unreact(this.uri, seq, emoji) : await api.react(this.uri, seq, emoji);
      this.applyOwn(reply.event);
    } catch (err) {
      this.view.alert(`Could not ${mine ? "remove" : "add"} the reaction: ${describe(err)}`);
    }
  }

  /** Show the message `seq` (a reply's original), loading older pages until it is there. */
  async jumpTo(seq) {
    const t = this.timeline;
    while (!this.closed && !t.has(seq) && t.hasOlder && t.firstSeq !== null && t.firstSeq > seq) {
      const before = t.firstSeq;
      await this.loadOlder();
      if (t.firstSeq === before) break; // the page did not come: leave it to the reader
    }
    if (this.closed) return;
    if (!this.view.log.reveal(seq)) this.view.alert("That message could not be found.");
  }

  /** The message a reply quotes: from the timeline, or fetched on its own when older. */
  quoteOf(seq) {
    const message = this.timeline.message(seq);
    if (message) return message;
    if (!this.timeline.quoted.has(seq)) this.fetchQuote(seq);
    return undefined;
  }

  async fetchQuote(seq) {
    const t = this.timeline;
    t.quoted.set(seq, null);
    try {
      const asOf = t.streamSeq || 0;
      const page = await api.messages(this.uri, { before: seq + 1, limit: 1 });
      const raw = page.messages.find((m) => m.seq === seq);
      if (!raw || t.has(seq)) return;
      t.quoted.set(seq, { ...normalizeMessage(raw), asOf });
      if (!this.closed) this.view.log.refreshQuotes(seq);
    } catch {
      t.quoted.delete(seq); // asked again the next time it is drawn
    }
  }

  // -- history ----------------------------------------------------------------------------------

  /** Load the page before the oldest loaded message (awaitable; one at a time). */
  loadOlder() {
    if (!this.olderPromise) {
      this.olderPromise = this.fetchOlder().finally(() => { this.olderPromise = null; });
    }
    return this.olderPromise;
  }

  async fetchOlder() {
    const t = this.timeline;
    if (!this.ready || !t.hasOlder || t.firstSeq === null) return;
    this.view.log.setOlder({ loading: true });
    try {
      const before = t.firstSeq;
      const asOf = t.streamSeq;
      const page = await api.messages(this.uri, { before, limit: PAGE });
      if (this.closed) return;
      const more = page.has_more && page.messages.length > 0;
      const from = more ? page.messages[0].seq - 1 : 0;
      const lines = await this.linesBetween(from, before);
      if (this.closed || t.firstSeq !== before) return;
      const added = t.addOlder(page.messages, lines, asOf);
      t.hasOlder = more;
      this.view.log.insert(added, t, { live: false });
    } catch {
      // Leave the button so the reader can try again.
    } finally {
      if (!this.closed) this.view.log.setOlder({ hasOlder: t.hasOlder, loading: false });
    }
    this.fillViewport();
  }

  /** The line events (joins, leaves, ...) with after < seq < before. */
  async linesBetween(after, before) {
    const lines = [];
    let from = after;
    for (let round = 0; round < 10 && from < before - 1; round += 1) {
      const page = await api.events(this.uri, { after: from, limit: EVENTS_PAGE });
      for (const event of page.events) {
        if (event.seq < before && LINE_KINDS.has(event.kind)) lines.push(event);
      }
      const last = page.events.length ? page.events[page.events.length - 1].seq : from;
      if (!page.has_more || last === from) break;
      from = last;
    }
    return lines;
  }

  /** Load older pages until the log can scroll (so "scroll up for more" works). */
  fillViewport() {
    if (!this.closed && this.ready && this.timeline.hasOlder && this.view.log.needsMore()) {
      requestAnimationFrame(() => this.loadOlder());
    }
  }

  scheduleGapFill() {
    clearTimeout(this.gapTimer);
    // The server delivers in order; a hole that stays for a moment is fetched over HTTP.
    this.gapTimer = setTimeout(() => this.catchUp(), 800);
  }

  /** Apply every event after the resume point from GET .../events (one run at a time). */
  catchUp() {
    if (!this.catchingUp) {
      this.catchingUp = this.fetchEvents().finally(() => { this.catchingUp = null; });
    }
    return this.catchingUp;
  }

  async fetchEvents() {
    const t = this.timeline;
    for (let round = 0; round < 50 && !this.closed && t.loaded; round += 1) {
      const from = t.streamSeq;
      let page;
      try {
        page = await api.events(this.uri, { after: from, limit: EVENTS_PAGE });
      } catch (err) {
        if (!this.ready) throw err;
        return;
      }
      if (this.closed || !t.loaded || t.streamSeq < from) return;
      for (const event of page.events) this.render(t.receive(event));
      if (!page.has_more || t.streamSeq === from) return;
    }
  }

  /** Fetch the members again; asked while a fetch runs, it runs once more after it. */
  async refreshMembers() {
    if (this.refreshingMembers) {
      this.membersAgain = true;
      return;
    }
    this.refreshingMembers = true;
    try {
      do {
        this.membersAgain = false;
        try {
          const info = await api.chat(this.uri);
          if (!this.closed) this.takeChat(info);
        } catch { /* keep the old list */ }
      } while (this.membersAgain && !this.closed);
    } finally {
      this.refreshingMembers = false;
    }
  }

  /** Tell the server what the reader has seen (only while the tab is in front, at the end). */
  markSeen() {
    if (!this.seeing()) return;
    const seq = this.timeline.maxSeq;
    if (seq) this.ctx.markRead(this.uri, seq);
  }
}
