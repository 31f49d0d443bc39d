/** Sidebar: "New chat" button and the list of my chats (latest activity first, last message, unread badges, direct chats' presence). */
import { h, listTime, replaceChildren } from "/js/dom.js";
import { seenText } from "/js/presence.js";
import { chatPath } from "/js/router.js";

export function chatTitle(chat) {
  return (chat && chat.title && chat.title.trim()) || "Untitled chat";
}

/** A chat's name: its title, or for a direct chat the other person's name (`peer`, when known). */
export function chatName(chat, peer) {
  if (chat && chat.kind === "direct") return peer ? (peer.display_name || peer.username) : "Direct chat";
  return chatTitle(chat);
}

export class ChatListView {
  /** @param {HTMLElement} el  @param {{onNewChat: () => void, onMore: () => void, me: object}} handlers */
  constructor(el, { onNewChat, onMore, me }) {
    this.el = el;
    this.me = me;
    this.newChat = h("button", {
      type: "button", class: "primary new-chat", on: { click: onNewChat },
    }, h("span", { attrs: { "aria-hidden": "true" }, text: "+ " }), "New chat");
    this.list = h("ul", { class: "chat-list" });
    this.nav = h("nav", { attrs: { "aria-label": "Chats", "aria-busy": "true" } },
      h("p", { class: "muted loading", text: "Loading chats…" }));
    replaceChildren(el, h("div", { class: "sidebar-head" }, h("h2", { text: "Chats" }), this.newChat), this.nav);
    this.items = new Map();
    // At the end of the list while more chats are on the server: seeing it loads them.
    this.sentinel = h("p", { class: "muted more-chats", text: "Loading more chats…", hidden: true });
    this.onMore = onMore;
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !this.sentinel.hidden) this.onMore();
    }, { root: this.nav, rootMargin: "200px 0px" });
  }

  /** Show the sentinel while there is more; observe it afresh, so a still-visible one fires. */
  setMore(more) {
    this.sentinel.hidden = !more;
    this.observer.unobserve(this.sentinel);
    if (more) this.observer.observe(this.sentinel);
  }

  /**
   * @param {Array<object>} chats  latest activity first
   * @param {{openUri: string|null, unread: (chat: object) => number, more?: boolean,
   *          nameOf: (chat: object) => string, presenceOf: (chat: object) => object|null}} opts
   *   `presenceOf` gives a direct chat's other person's {online, lastSeen} (null: not shown).
   */
  update(chats, { openUri, unread, more = false, nameOf = chatTitle, presenceOf = () => null }) {
    this.nav.removeAttribute("aria-busy");
    if (!chats.length) {
      replaceChildren(this.nav, h("p", { class: "muted empty",
        text: "No chats yet. Start one with “New chat”, or open an invite link someone sent you." }));
      this.items.clear();
      this.setMore(false);
      return;
    }
    if (this.list.parentNode !== this.nav) replaceChildren(this.nav, this.list, this.sentinel);
    const seen = new Set();
    chats.forEach((chat, index) => {
      seen.add(chat.uri);
      let item = this.items.get(chat.uri);
      if (!item) {
        item = this.makeItem(chat);
        this.items.set(chat.uri, item);
      }
      this.fill(item, chat, chat.uri === openUri, unread(chat), nameOf(chat), presenceOf(chat));
      if (this.list.children[index] !== item.li) this.list.insertBefore(item.li, this.list.children[index] || null);
    });
    for (const [uri, item] of this.items) {
      if (!seen.has(uri)) {
        item.li.remove();
        this.items.delete(uri);
      }
    }
    if (more !== !this.sentinel.hidden) this.setMore(more);
  }

  makeItem(chat) {
    const title = h("span", { class: "chat-title" });
    const dot = h("span", { class: "presence-dot", hidden: true, attrs: { "aria-hidden": "true" } });
    const seen = h("span", { class: "chat-seen", hidden: true });
    const head = h("span", { class: "chat-head-line" }, dot, title, seen);
    const preview = h("span", { class: "chat-preview" });
    const when = h("time", { class: "chat-when" });
    const sub = h("span", { class: "chat-sub" }, preview, when);
    const count = h("span", { attrs: { "aria-hidden": "true" } });
    const srCount = h("span", { class: "sr-only" });
    const badge = h("span", { class: "badge" }, count, srCount);
    const link = h("a", { href: chatPath(chat.uri), dataset: { route: "" } },
      h("span", { class: "chat-text" }, head, sub), badge);
    const li = h("li", {}, link);
    return { li, link, title, dot, seen, preview, when, badge, count, srCount };
  }

  fill(item, chat, open, unread, name, presence) {
    item.title.textContent = name;
    // A direct chat: a dot while the other person is online, else when they were last seen.
    item.dot.hidden = !presence;
    item.seen.hidden = !presence;
    if (presence) {
      item.dot.classList.toggle("online", presence.online);
      item.seen.textContent = presence.online ? "online" : seenText(presence, { short: true });
      item.seen.classList.toggle("sr-only", presence.online); // the dot says it to the eye
    }
    this.fillPreview(item, chat);
    if (open) item.link.setAttribute("aria-current", "page");
    else item.link.removeAttribute("aria-current");
    item.badge.hidden = !(unread > 0);
    item.count.textContent = unread > 99 ? "99+" : String(unread);
    item.srCount.textContent = unread > 0 ? `, ${unread} unread` : "";
  }

  /** The last message's author, text and time (GET /api/chats `last_message`). */
  fillPreview(item, chat) {
    const last = chat.last_message;
    if (!last) {
      item.preview.textContent = chat.last_seq ? "" : "No messages yet";
      item.when.textContent = "";
      item.when.removeAttribute("datetime");
      return;
    }
    const mine = this.me && last.user.id === this.me.id;
    const who = mine ? "You" : (last.user.display_name || last.user.username);
    // A deleted message is kept with an empty text (its seq keeps its meaning).
    const text = last.deleted || !last.message ? "message deleted" : last.message.replace(/\s+/g, " ");
    item.preview.textContent = `${who}: ${text}`;
    item.when.textContent = listTime(last.created_at);
    item.when.dateTime = last.created_at;
  }
}
