/**
 * The message log: messages and line events ordered by seq, pending sends at the end, older
 * history on scroll up, day separators, the unread divider, and keyboard access: one message
 * at a time is a tab stop (arrow keys move it), its toolbar shows while it has the focus.
 */
import { dayLabel, h, replaceChildren } from "/js/dom.js";
import { ROVING, fillMessage, lineNode, messageNode } from "/js/views/message.js";

const GROUP_MS = 5 * 60 * 1000;
const BOTTOM_SLACK = 48;
const LONG_PRESS_MS = 500;

export class MessageLog {
  /**
   * @param {{me: object, onLoadOlder: () => void, onRetry: (id: string) => void,
   *          onDiscard: (id: string) => void, onReachBottom: () => void, actions: object}} opts
   *   `actions` is the message view of views/message.js (permissions, quotes, handlers).
   */
  constructor({ me, onLoadOlder, onRetry, onDiscard, onReachBottom, actions }) {
    this.me = me;
    this.onLoadOlder = onLoadOlder;
    this.onRetry = onRetry;
    this.onDiscard = onDiscard;
    this.onReachBottom = onReachBottom;
    this.actions = { me, ...actions };
    this.nodes = new Map(); // seq -> li (messages and lines)
    this.pendingNodes = new Map(); // client_id -> li
    this.current = null; // the message <li> that is the log's tab stop
    this.editing = null; // {seq, form}
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
    this.list.addEventListener("keydown", (event) => this.onKey(event));
    this.list.addEventListener("focusin", (event) => {
      const li = event.target.closest && event.target.closest("li.msg[data-seq]");
      if (li && this.list.contains(li)) this.setCurrent(li);
    });
    this.bindLongPress();
  }

  /** Replace the loading state with the timeline and scroll to the newest. */
  renderAll(timeline) {
    this.nodes.clear();
    this.pendingNodes.clear();
    this.current = null;
    this.list.replaceChildren();
    for (const item of timeline.items) this.list.append(this.node(item));
    for (const entry of timeline.pending.values()) this.upsertPending(entry);
    for (const li of this.list.children) this.regroup(li);
    this.el.removeAttribute("aria-busy");
    replaceChildren(this.el, this.scroller, this.marker);
    this.setOlder({ hasOlder: timeline.hasOlder, loading: false });
    this.followNewest();
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

  node(item) {
    const li = item.kind === "message" ? messageNode(item, this.actions) : lineNode(item);
    this.nodes.set(item.seq, li);
    return li;
  }

  /**
   * Insert confirmed items (messages, lines) at their seq position; keeps the reader's place.
   * `live` items at the end scroll into view only if the reader was at the bottom (or sent it).
   */
  insert(items, timeline, { live = false } = {}) {
    if (!this.rendered || !items.length) return;
    const wasAtBottom = this.atBottom();
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    let mineArrived = false;
    let othersArrived = 0;
    for (const item of items) {
      if (this.nodes.has(item.seq)) continue;
      const before = this.nextRenderedNode(item.seq, timeline) || this.firstPendingNode();
      const li = this.node(item);
      this.list.insertBefore(li, before);
      this.regroup(li);
      if (li.nextElementSibling) this.regroup(li.nextElementSibling);
      if (item.kind !== "message") continue;
      if (item.user.id === this.me.id) mineArrived = true;
      else othersArrived += 1;
      this.refreshQuotes(item.seq);
    }
    if (!this.focusInside()) this.followNewest();
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

  /** A message changed (edited, deleted, reacted to): redraw it and the quotes of it. */
  update(seq, message) {
    const li = this.nodes.get(seq);
    if (li && message) {
      // An edit in progress keeps its text; the message is redrawn when the editor closes.
      if (this.editing && this.editing.seq === seq && message.deleted) this.stopEdit();
      if (!(this.editing && this.editing.seq === seq)) {
        const focused = li.contains(document.activeElement) && document.activeElement !== li
          ? focusKey(document.activeElement) : null;
        fillMessage(li, message, this.actions);
        if (focused !== null && !li.contains(document.activeElement)) {
          // The message first: its toolbar shows only while the focus is within it.
          li.focus({ preventScroll: true });
          const again = focused && li.querySelector(focused);
          if (again) again.focus({ preventScroll: true });
        }
      }
    }
    this.refreshQuotes(seq);
  }

  /** Redraw every message (e.g. my role changed, so which may be deleted). */
  refreshAll() {
    for (const li of this.messageItems()) {
      const seq = Number(li.dataset.seq);
      const message = this.actions.messageAt(seq);
      if (message && !(this.editing && this.editing.seq === seq)) fillMessage(li, message, this.actions);
    }
  }

  /** Redraw every quote of the message `seq` (its text or author became known, or changed). */
  refreshQuotes(seq) {
    for (const quote of this.list.querySelectorAll(`.quote[data-reply-to="${seq}"]`)) {
      const li = quote.closest("li.msg");
      const message = li && li.dataset.seq ? this.actions.messageAt(Number(li.dataset.seq)) : null;
      if (message && !(this.editing && this.editing.seq === message.seq)) fillMessage(li, message, this.actions);
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
      li = messageNode({
        user: this.me, message: entry.message, created_at: entry.created_at, seq: null,
        reply_to: entry.reply_to || null, edited_at: null, deleted: false, reactions: [],
      }, this.actions);
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

  /**
   * Head the first item of a day with the day ("Today", "Yesterday", a date), and hide the
   * name/time of a message that follows one of the same author within 5 minutes that day.
   */
  regroup(li) {
    const prev = li.previousElementSibling;
    const time = Number(li.dataset.time);
    const day = new Date(time).toDateString();
    const newDay = !prev || new Date(Number(prev.dataset.time)).toDateString() !== day;
    const cont = Boolean(prev && !newDay && li.dataset.user && prev.dataset.user === li.dataset.user
      && Math.abs(time - Number(prev.dataset.time)) < GROUP_MS && !li.querySelector(":scope > .new-divider"));
    li.classList.toggle("cont", cont);
    const label = newDay ? dayLabel(time) : "";
    let head = li.querySelector(":scope > .day");
    if (!label) head?.remove();
    else if (!head) li.prepend(h("p", { class: "day", text: label }));
    else if (head.textContent !== label) head.textContent = label;
  }

  /** Mark where unread messages begin: a "New messages" line above the message `seq`. */
  setDivider(seq) {
    for (const old of this.list.querySelectorAll(".new-divider")) {
      const li = old.parentElement;
      old.remove();
      this.regroup(li);
    }
    const li = seq === null ? null : this.nodes.get(seq);
    if (!li) return;
    const divider = h("p", { class: "new-divider" }, h("span", { text: "New messages" }));
    const day = li.querySelector(":scope > .day");
    if (day) day.after(divider);
    else li.prepend(divider);
    this.regroup(li);
  }

  // -- keyboard: one message is the tab stop; arrows move it; its toolbar follows the focus --

  focusInside() {
    return this.list.contains(document.activeElement);
  }

  messageItems() {
    return [...this.list.querySelectorAll(":scope > li.msg[data-seq]")];
  }

  /** The newest message becomes the tab stop (unless the reader is in the log). */
  followNewest() {
    const items = this.messageItems();
    if (items.length) this.setCurrent(items[items.length - 1]);
    this.scroller.tabIndex = items.length ? -1 : 0;
  }

  setCurrent(li) {
    if (this.current === li) return;
    if (this.current) {
      this.current.tabIndex = -1;
      for (const el of this.current.querySelectorAll(ROVING)) el.tabIndex = -1;
    }
    this.current = li;
    li.tabIndex = 0;
    for (const el of li.querySelectorAll(ROVING)) el.tabIndex = 0;
  }

  /** Give the message `seq` the focus (it becomes the tab stop), without scrolling. */
  focusMessage(seq) {
    const li = this.nodes.get(seq);
    if (!li || !li.dataset.seq) return;
    this.setCurrent(li);
    li.focus({ preventScroll: true });
  }

  /** Give the message `seq` the focus, scrolled into the middle, and highlight it briefly. */
  reveal(seq) {
    const li = this.nodes.get(seq);
    if (!li) return false;
    if (li.dataset.seq) {
      this.setCurrent(li);
      li.focus({ preventScroll: true });
    }
    li.scrollIntoView({ block: "center" });
    li.classList.remove("flash");
    void li.offsetWidth; // restart the animation
    li.classList.add("flash");
    setTimeout(() => li.classList.remove("flash"), 2000);
    return true;
  }

  onKey(event) {
    const li = event.target;
    if (!(li instanceof HTMLElement)) return;
    if (li.matches("li.msg[data-seq]")) {
      const items = this.messageItems();
      const at = items.indexOf(li);
      let next = null;
      if (event.key === "ArrowUp") next = items[at - 1];
      else if (event.key === "ArrowDown") next = items[at + 1];
      else if (event.key === "Home") next = items[0];
      else if (event.key === "End") next = items[items.length - 1];
      else if (event.key === "Enter" || event.key === " ") {
        const first = li.querySelector(".msg-actions button");
        if (first) {
          event.preventDefault();
          first.focus();
        }
        return;
      }
      if (next) {
        event.preventDefault();
        next.focus({ preventScroll: true });
        next.scrollIntoView({ block: "nearest" });
      }
    } else if (event.key === "Escape" && li.closest(".msg-actions")) {
      event.preventDefault();
      li.closest("li.msg")?.focus({ preventScroll: true });
    }
  }

  /** Touch: holding a message for half a second shows its toolbar (as hover does). */
  bindLongPress() {
    let timer = null;
    let start = null;
    const cancel = () => {
      clearTimeout(timer);
      timer = null;
    };
    this.list.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "touch") return;
      const li = event.target.closest && event.target.closest("li.msg[data-seq]");
      if (!li || event.target.closest(".msg-actions, .picker")) return;
      cancel();
      start = { x: event.clientX, y: event.clientY };
      timer = setTimeout(() => {
        timer = null;
        this.showActions(li);
      }, LONG_PRESS_MS);
    });
    this.list.addEventListener("pointermove", (event) => {
      if (timer && start && Math.hypot(event.clientX - start.x, event.clientY - start.y) > 10) cancel();
    });
    for (const type of ["pointerup", "pointercancel"]) this.list.addEventListener(type, cancel);
    this.list.addEventListener("contextmenu", (event) => {
      const li = event.target.closest && event.target.closest("li.msg.touched");
      if (li) event.preventDefault(); // the long press showed our toolbar, not the browser's menu
    });
    document.addEventListener("pointerdown", (event) => {
      for (const li of this.list.querySelectorAll("li.msg.touched")) {
        if (!li.contains(event.target)) li.classList.remove("touched");
      }
    }, true);
  }

  showActions(li) {
    for (const other of this.list.querySelectorAll("li.msg.touched")) other.classList.remove("touched");
    li.classList.add("touched");
    this.setCurrent(li);
    li.focus({ preventScroll: true });
  }

  // -- inline edit ------------------------------------------------------------------------------

  /** Put an editor in place of the text of message `seq`: Enter saves, Esc cancels. */
  startEdit(seq, message, { save, max, keep }) {
    if (this.editing) this.stopEdit();
    const li = this.nodes.get(seq);
    if (!li) return;
    const text = li.querySelector(".bubble .text");
    const field = h("textarea", {
      class: "edit-field", rows: 1, value: message.message,
      attrs: { "aria-label": "Edit message", "aria-describedby": `edit-hint-${seq}` },
    });
    keep(field, max);
    const error = h("p", { class: "form-error small", attrs: { role: "alert" } });
    const saveButton = h("button", { type: "submit", class: "primary small-button", text: "Save" });
    const form = h("form", { class: "editor", noValidate: true },
      field, error,
      h("div", { class: "editor-foot" },
        h("span", { id: `edit-hint-${seq}`, class: "hint", text: "Enter to save · Esc to cancel" }),
        h("button", { type: "button", class: "ghost small-button", text: "Cancel", on: { click: () => this.stopEdit(true) } }),
        saveButton));
    const submit = async () => {
      const value = field.value.trim();
      if (!value) {
        error.textContent = "A message cannot be empty. Use Delete to remove it.";
        return;
      }
      if (value === message.message) {
        this.stopEdit(true);
        return;
      }
      saveButton.disabled = true;
      error.textContent = "";
      try {
        await save(value);
        this.stopEdit(true);
      } catch (err) {
        saveButton.disabled = false;
        error.textContent = err.message || "Could not save.";
      }
    };
    field.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        this.stopEdit(true);
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        submit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    field.addEventListener("input", () => this.autosize(field));
    li.classList.add("editing");
    text.replaceWith(form);
    li.querySelector(".edited-tag")?.remove();
    this.editing = { seq, form };
    this.autosize(field);
    field.focus({ preventScroll: true });
    field.setSelectionRange(field.value.length, field.value.length);
    form.scrollIntoView({ block: "nearest" }); // its Save and Cancel too
  }

  /** Close the editor and show the message as it is now; `refocus` gives the message the focus. */
  stopEdit(refocus = false) {
    if (!this.editing) return;
    const { seq } = this.editing;
    this.editing = null;
    const li = this.nodes.get(seq);
    if (!li) return;
    li.classList.remove("editing");
    const message = this.actions.messageAt(seq);
    if (message) fillMessage(li, message, this.actions);
    if (refocus) {
      this.setCurrent(li);
      li.focus({ preventScroll: true });
    }
  }

  autosize(field) {
    field.style.height = "auto";
    field.style.height = `${Math.min(field.scrollHeight + 2, Math.round(window.innerHeight * 0.4))}px`;
  }
}

/** A selector that finds the same control again after a message is redrawn ("" if none). */
function focusKey(el) {
  if (el.matches(".act")) return `.act[aria-label="${CSS.escape(el.getAttribute("aria-label"))}"]`;
  if (el.matches(".chip")) return `.chip[data-emoji="${CSS.escape(el.dataset.emoji)}"]`;
  if (el.matches(".quote")) return ".quote";
  return "";
}
