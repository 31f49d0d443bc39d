/** The message log: ordered by seq, pending sends at the end, older history on scroll up, day separators. */
import { dayLabel, h, linkify, replaceChildren, shortTime } from "/js/dom.js";
import { initials, hue } from "/js/views/layout.js";

const GROUP_MS = 5 * 60 * 1000;
const BOTTOM_SLACK = 48;

export class MessageLog {
  /**
   * @param {{me: object, onLoadOlder: () => void, onRetry: (id: string) => void,
   *          onDiscard: (id: string) => void, onReachBottom: () => void}} opts
   */
  constructor({ me, onLoadOlder, onRetry, onDiscard, onReachBottom }) {
    this.me = me;
    this.onLoadOlder = onLoadOlder;
    this.onRetry = onRetry;
    this.onDiscard = onDiscard;
    this.onReachBottom = onReachBottom;
    this.nodes = new Map(); // seq -> li
    this.pendingNodes = new Map(); // client_id -> li
    this.unseenBelow = 0;
    this.top = h("div", { class: "log-top" });
    this.list = h("ol", { class: "log" });
    // The scrolling box is the named live region (a role="log" on the <ol> would hide its items).
    this.scroller = h("div", {
      class: "log-scroll", tabIndex: 0,
      attrs: { role: "log", "aria-live": "polite", "aria-label": "Conversation", "aria-relevant": "additions" },
    }, this.top, this.list);
    this.marker = h("button", {
      type: "button", class: "new-marker", hidden: true,
      on: { click: () => this.scrollToBottom() },
    });
    this.el = h("div", { class: "log-wrap", attrs: { "aria-busy": "true" } },
      h("p", { class: "muted loading center", text: "Loading messages…" }));
    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
  }

  /** Replace the loading state with the timeline's messages and scroll to the newest. */
  renderAll(timeline) {
    this.nodes.clear();
    this.pendingNodes.clear();
    this.list.replaceChildren();
    for (const message of timeline.items) this.list.append(this.messageNode(message));
    for (const entry of timeline.pending.values()) this.upsertPending(entry);
    for (const li of this.list.children) this.regroup(li);
    this.el.removeAttribute("aria-busy");
    replaceChildren(this.el, this.scroller, this.marker);
    this.setOlder({ hasOlder: timeline.hasOlder, loading: false });
    this.scrollToBottom();
  }

  /** Show an error instead of the log (e.g. the chat does not exist). */
  renderError(text, ...actions) {
    this.el.removeAttribute("aria-busy");
    replaceChildren(this.el, h("div", { class: "center empty-state" }, h("p", { text }), ...actions));
  }

  get rendered() {
    return this.scroller.isConnected;
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= BOTTOM_SLACK;
  }

  /** True when the log does not fill its box yet (so scrolling up cannot ask for more). */
  needsMore() {
    return this.scroller.scrollHeight <= this.scroller.clientHeight + 8;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.unseenBelow = 0;
    this.marker.hidden = true;
  }

  onScroll() {
    if (this.scroller.scrollTop < 120) this.onLoadOlder();
    if (this.atBottom()) {
      this.unseenBelow = 0;
      this.marker.hidden = true;
      this.onReachBottom();
    }
  }

  setOlder({ hasOlder, loading }) {
    if (loading) replaceChildren(this.top, h("p", { class: "muted small", text: "Loading older messages…" }));
    else if (hasOlder) {
      replaceChildren(this.top, h("button", {
        type: "button", class: "link small", text: "Load older messages", on: { click: () => this.onLoadOlder() },
      }));
    } else replaceChildren(this.top, h("p", { class: "muted small", text: "This is the beginning of the chat." }));
  }

  /**
   * Insert confirmed messages at their seq position; keeps the reader's place. `live`
   * messages at the end scroll into view only if the reader was at the bottom (or sent it).
   */
  insert(messages, timeline, { live = false } = {}) {
    if (!this.rendered || !messages.length) return;
    const wasAtBottom = this.atBottom();
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    let mineArrived = false;
    let othersArrived = 0;
    for (const message of messages) {
      if (this.nodes.has(message.seq)) continue;
      const before = this.nextRenderedNode(message.seq, timeline) || this.firstPendingNode();
      const li = this.messageNode(message);
      this.list.insertBefore(li, before);
      this.regroup(li);
      if (li.nextElementSibling) this.regroup(li.nextElementSibling);
      if (message.user.id === this.me.id) mineArrived = true;
      else othersArrived += 1;
    }
    if (!live) {
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    } else if (wasAtBottom || mineArrived) {
      this.scrollToBottom();
    } else if (othersArrived) {
      this.unseenBelow += othersArrived;
      this.marker.textContent = `${this.unseenBelow} new message${this.unseenBelow === 1 ? "" : "s"} ↓`;
      this.marker.hidden = false;
    }
  }

  /** The node of the smallest already-rendered seq above `seq` (the timeline may hold more). */
  nextRenderedNode(seq, timeline) {
    let index = timeline.indexAfter(seq);
    for (; index < timeline.items.length; index += 1) {
      const node = this.nodes.get(timeline.items[index].seq);
      if (node) return node;
    }
    return null;
  }

  firstPendingNode() {
    for (const li of this.pendingNodes.values()) if (li.parentNode === this.list) return li;
    return null;
  }

  /** Add or update the bubble of a send that is pending, sent (awaiting echo) or failed. */
  upsertPending(entry) {
    if (!this.rendered) return; // renderAll picks it up from the timeline
    let li = this.pendingNodes.get(entry.client_id);
    const fresh = !li;
    if (fresh) {
      li = this.messageNode({
        user: this.me, message: entry.message, created_at: entry.created_at, seq: null,
      });
      li.dataset.clientId = entry.client_id;
      this.pendingNodes.set(entry.client_id, li);
      this.list.append(li);
      this.regroup(li);
    }
    li.classList.toggle("pending", entry.status === "pending");
    li.classList.toggle("failed", entry.status === "failed");
    const state = li.querySelector(".state");
    if (entry.status === "pending") replaceChildren(state, "Sending…");
    else if (entry.status === "failed") {
      replaceChildren(state,
        h("span", { text: `Not sent: ${entry.error || "refused"}` }),
        h("button", { type: "button", class: "link small", text: "Retry", on: { click: () => this.onRetry(entry.client_id) } }),
        h("button", { type: "button", class: "link small", text: "Discard", on: { click: () => this.onDiscard(entry.client_id) } }));
    } else replaceChildren(state);
    if (fresh) this.scrollToBottom();
  }

  removePending(clientId) {
    const li = this.pendingNodes.get(clientId);
    if (!li) return;
    this.pendingNodes.delete(clientId);
    const next = li.nextElementSibling;
    li.remove();
    if (next) this.regroup(next);
  }

  messageNode(message) {
    const mine = message.user.id === this.me.id;
    const name = message.user.display_name || message.user.username;
    // The author's name is there for screen readers on every message, mine included.
    const li = h("li", { class: mine ? "msg mine" : "msg" },
      h("span", {
        class: "avatar", text: initials(name), attrs: { "aria-hidden": "true" }, style: { "--hue": hue(message.user.id) },
      }),
      h("div", { class: "bubble" },
        h("div", { class: "meta" },
          h("span", { class: "author", text: name }),
          h("time", { dateTime: message.created_at, title: new Date(message.created_at).toLocaleString(), text: shortTime(message.created_at) })),
        h("p", { class: "text" }, ...linkify(message.message)),
        h("div", { class: "state small" })));
    li.dataset.user = String(message.user.id);
    li.dataset.time = String(Date.parse(message.created_at) || 0);
    if (message.seq !== null && message.seq !== undefined) {
      li.dataset.seq = String(message.seq);
      this.nodes.set(message.seq, li);
    }
    return li;
  }

  /**
   * Head the first message of a day with the day ("Today", "Yesterday", a date), and hide the
   * name/time of a message that follows one of the same author within 5 minutes that day.
   */
  regroup(li) {
    const prev = li.previousElementSibling;
    const time = Number(li.dataset.time);
    const day = new Date(time).toDateString();
    const newDay = !prev || new Date(Number(prev.dataset.time)).toDateString() !== day;
    const cont = Boolean(prev && !newDay && prev.dataset.user === li.dataset.user
      && Math.abs(time - Number(prev.dataset.time)) < GROUP_MS);
    li.classList.toggle("cont", cont);
    const label = newDay ? dayLabel(time) : "";
    let head = li.querySelector(":scope > .day");
    if (!label) head?.remove();
    else if (!head) li.prepend(h("p", { class: "day", text: label }));
    else if (head.textContent !== label) head.textContent = label;
  }
}
