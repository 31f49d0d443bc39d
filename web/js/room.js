/** The open chat: join if needed, load history over HTTP, subscribe from its last seq, send, type. */
import { api, describe } from "/js/api.js";
import { h } from "/js/dom.js";
import { navigate } from "/js/router.js";
import { attentive, chime } from "/js/notify.js";
import { ChatView } from "/js/views/chat.js";

const PAGE = 50;
const STALE_AFTER = 200;

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
   * @param {{me, socket, store, seen, onActivity: (uri, seq) => void, onJoined: () => void,
   *          onSeen: () => void, isMember: (uri) => Promise<boolean|null>}} ctx
   */
  constructor(uri, ctx) {
    this.uri = uri;
    this.ctx = ctx;
    this.closed = false;
    this.ready = false;
    this.loadingOlder = false;
    this.timeline = ctx.store.timeline(uri);
    this.view = new ChatView(uri, {
      me: ctx.me,
      onLoadOlder: () => this.loadOlder(),
      onRetry: (id) => this.retry(id),
      onDiscard: (id) => this.discard(id),
      onSend: (text) => this.send(text),
      onTyping: () => ctx.socket.typing(uri),
      onReachBottom: () => this.markSeen(),
    });
  }

  async open() {
    try {
      const info = await this.loadInfo();
      if (this.closed) return;
      this.view.setChat(info.chat, info.members);
      const t = this.timeline;
      if (t.loaded && info.chat.last_seq - (t.lastSeq ?? 0) > STALE_AFTER) t.reset();
      if (!t.loaded) {
        const page = await api.messages(this.uri, { limit: PAGE });
        if (this.closed) return;
        for (const m of page.messages) t.add(m);
        t.hasOlder = page.has_more;
        t.loaded = true;
      }
      this.view.log.renderAll(t);
      this.ready = true;
      this.ctx.socket.subscribe(this.uri, () => this.timeline.lastSeq);
      this.markSeen();
      this.ctx.onActivity(this.uri, t.maxSeq);
      this.view.composer.focus();
      if (t.hasGap) this.fillGap();
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

  fail(err) {
    const home = h("a", { href: "/", class: "button primary", dataset: { route: "" }, text: "Back to my chats" });
    const text = err.code === "not_found"
      ? "This chat does not exist. Check the invite link."
      : `Cannot open this chat: ${describe(err)}`;
    this.view.title.textContent = err.code === "not_found" ? "Chat not found" : "Chat unavailable";
    const retry = err.code === "not_found" ? null
      : h("button", { type: "button", class: "ghost", text: "Try again", on: { click: () => navigate(location.pathname) } });
    this.view.log.renderError(text, home, retry);
  }

  close() {
    this.closed = true;
    clearTimeout(this.gapTimer);
    this.ctx.socket.unsubscribe(this.uri);
    this.view.destroy();
  }

  /** A server frame about this chat. */
  onFrame(frame) {
    if (frame.type === "message") this.onMessage(frame);
    else if (frame.type === "typing" && frame.user) this.view.showTyping(frame.user);
    else if (frame.type === "subscribed") this.ctx.onActivity(this.uri, frame.last_seq);
    else if (frame.type === "unsubscribed" && !this.closed) {
      this.view.log.renderError("You are no longer a member of this chat.",
        h("a", { href: "/", class: "button primary", dataset: { route: "" }, text: "Back to my chats" }));
    } else if (frame.type === "error" && !frame.client_id) this.onError(frame);
  }

  onError(frame) {
    if (frame.code === "invalid" && this.ready) {
      // Our resume point is past the chat's end (e.g. the server lost data): start over.
      this.ctx.socket.unsubscribe(this.uri);
      this.timeline.reset();
      this.ready = false;
      this.open();
    } else if (frame.code === "forbidden" || frame.code === "not_found") {
      this.fail({ code: frame.code, message: frame.message });
    }
  }

  onMessage(frame) {
    const { type: _type, ...message } = frame;
    const { added, pending } = this.timeline.add(message);
    if (pending) this.view.log.removePending(pending.client_id);
    if (!added || !this.ready) return;
    this.view.log.insert([message], this.timeline, { live: true });
    this.view.clearTyping(message.user.id);
    if (!this.view.hasMember(message.user.id)) this.refreshMembers();
    if (message.user.id !== this.ctx.me.id && !attentive()) chime();
    this.markSeen();
    this.ctx.onActivity(this.uri, this.timeline.maxSeq, message);
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

  send(text) {
    const entry = this.timeline.addPending({
      client_id: newClientId(), message: text, created_at: new Date().toISOString(), user: this.ctx.me,
    });
    this.view.log.upsertPending(entry);
    this.ctx.socket.sendMessage(this.uri, text, entry.client_id);
  }

  retry(clientId) {
    const entry = this.timeline.pending.get(clientId);
    if (!entry) return;
    Object.assign(entry, { status: "pending", error: null });
    this.view.log.upsertPending(entry);
    this.ctx.socket.sendMessage(this.uri, entry.message, clientId);
  }

  discard(clientId) {
    this.timeline.dropPending(clientId);
    this.ctx.socket.discard(clientId);
    this.view.log.removePending(clientId);
  }

  async loadOlder() {
    const t = this.timeline;
    if (!this.ready || this.loadingOlder || !t.hasOlder || t.firstSeq === null) return;
    this.loadingOlder = true;
    this.view.log.setOlder({ loading: true });
    try {
      const page = await api.messages(this.uri, { before: t.firstSeq, limit: PAGE });
      if (this.closed) return;
      const fresh = page.messages.filter((m) => t.add(m).added);
      t.hasOlder = page.has_more && page.messages.length > 0;
      this.view.log.insert(fresh, t, { live: false });
    } catch {
      // Leave the button so the reader can try again.
    } finally {
      this.loadingOlder = false;
      if (!this.closed) this.view.log.setOlder({ hasOlder: t.hasOlder, loading: false });
    }
    this.fillViewport();
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
    this.gapTimer = setTimeout(() => this.fillGap(), 800);
  }

  async fillGap() {
    const t = this.timeline;
    for (let round = 0; round < 20 && t.hasGap && !this.closed; round += 1) {
      const from = t.lastSeq;
      let page;
      try { page = await api.messages(this.uri, { after: from, limit: 200 }); } catch { return; }
      if (this.closed) return;
      const fresh = page.messages.filter((m) => t.add(m).added);
      this.view.log.insert(fresh, t, { live: true });
      if (t.lastSeq === from) return;
    }
  }

  async refreshMembers() {
    if (this.refreshingMembers) return;
    this.refreshingMembers = true;
    try {
      const info = await api.chat(this.uri);
      if (!this.closed) this.view.setChat(info.chat, info.members);
    } catch { /* keep the old list */ } finally {
      this.refreshingMembers = false;
    }
  }

  /** Record what the reader has seen (only while the tab is in front). */
  markSeen() {
    if (!this.ready || !attentive()) return;
    if (this.ctx.seen.see(this.uri, this.timeline.maxSeq)) this.ctx.onSeen();
  }
}
