/** One message of the log: bubble (author, time, quoted reply, text, "edited"), reaction chips and its action toolbar. */
import { h, linkify, shortTime } from "/js/dom.js";
import { lineText } from "/js/events.js";
import { markMentions, mentions } from "/js/mentions.js";
import { initials, hue } from "/js/views/layout.js";

/** Parts of a message's <li> that belong to the log (day separator, unread divider), not to the message. */
const KEEP = ".day, .new-divider";

/** Controls inside a message that are tab stops only while the message is the log's tab stop. */
export const ROVING = ".quote, .chip, .text a";

function nameOf(user) {
  return user.display_name || user.username;
}

/**
 * The <li> of a message (confirmed, or a pending send when `seq` is null).
 * `view` gives: me, canEdit(m), canDelete(m), quoteOf(seq) -> message|undefined,
 * namesOf(userIds) -> string, and the handlers onReact, onToggle, onReply, onEdit, onDelete, onJump.
 */
export function messageNode(message, view) {
  const mine = message.user.id === view.me.id;
  const li = h("li", { class: mine ? "msg mine" : "msg" });
  li.dataset.user = String(message.user.id);
  li.dataset.time = String(Date.parse(message.created_at) || 0);
  if (message.seq !== null && message.seq !== undefined) {
    li.dataset.seq = String(message.seq);
    li.tabIndex = -1; // the log makes one message at a time a tab stop (roving tabindex)
  }
  fillMessage(li, message, view);
  return li;
}

/** (Re)draw a message inside its <li>, keeping the log's own parts and the <li> itself. */
export function fillMessage(li, message, view) {
  // A toolbar whose reaction picker is open stays as it is (the picker lives in it).
  const picking = message.deleted ? null : li.querySelector(":scope > .msg-actions.picking");
  for (const child of [...li.children]) if (!child.matches(KEEP) && child !== picking) child.remove();
  const confirmed = Boolean(li.dataset.seq);
  li.classList.toggle("deleted", message.deleted);
  li.classList.toggle("edited", Boolean(message.edited_at) && !message.deleted);
  const name = nameOf(message.user);
  // Someone else's message that mentions me: marked (a bar and bold words, not only colour).
  const forMe = message.user.id !== view.me.id && !message.deleted && mentions(message.message, view.me.username);
  li.classList.toggle("mention-me", forMe);
  // The author's name is there for screen readers on every message, mine included.
  const bubble = h("div", { class: "bubble" },
    h("div", { class: "meta" },
      h("span", { class: "author", text: name }),
      h("time", { dateTime: message.created_at, title: new Date(message.created_at).toLocaleString(), text: shortTime(message.created_at) }),
      forMe ? h("span", { class: "mention-tag", text: "mentions you" }) : null),
    message.reply_to && !message.deleted ? quoteButton(message.reply_to, view) : null,
    message.deleted
      ? h("p", { class: "text gone", text: "message deleted" })
      : h("p", { class: "text" }, ...(forMe ? markMentions(linkify(message.message), view.me.username) : linkify(message.message))),
    message.edited_at && !message.deleted
      ? h("span", { class: "edited-tag", text: "edited", title: `Edited ${new Date(message.edited_at).toLocaleString()}` })
      : null,
    h("div", { class: "state small" }));
  li.append(
    h("span", {
      class: "avatar", text: initials(name), attrs: { "aria-hidden": "true" }, style: { "--hue": hue(message.user.id) },
    }),
    bubble);
  if (!message.deleted && message.reactions && message.reactions.length) li.append(reactionRow(message, view));
  if (picking) li.append(picking);
  else if (confirmed && !message.deleted) li.append(toolbar(message, view));
  const current = li.tabIndex === 0;
  for (const el of li.querySelectorAll(ROVING)) el.tabIndex = current ? 0 : -1;
}

function quoteButton(seq, view) {
  const original = view.quoteOf(seq);
  let who = "";
  let text = "an earlier message";
  if (original) {
    who = nameOf(original.user);
    text = original.deleted ? "message deleted" : original.message.replace(/\s+/g, " ");
  }
  return h("button", {
    type: "button", class: "quote", title: "Show the message this answers",
    dataset: { replyTo: String(seq) },
    on: { click: () => view.onJump(seq) },
  },
  h("span", { class: "sr-only", text: "In reply to " }),
  who ? h("span", { class: "quote-author", text: `${who}: ` }) : null,
  h("span", { class: "quote-text", text }));
}

function reactionRow(message, view) {
  return h("div", { class: "reactions" }, ...message.reactions.map((r) => {
    const mine = r.users.includes(view.me.id);
    const names = view.namesOf(r.users);
    return h("button", {
      type: "button", class: mine ? "chip mine" : "chip",
      title: names ? `${names}${r.count > r.users.length ? " and others" : ""}` : "",
      attrs: { "aria-pressed": String(mine) },
      dataset: { emoji: r.emoji },
      on: { click: () => view.onToggle(message.seq, r.emoji, mine) },
    }, h("span", { class: "chip-emoji", text: r.emoji }), " ", h("span", { class: "chip-count", text: String(r.count) }));
  }));
}

function actionButton(label, glyph, onClick, extra = {}) {
  return h("button", {
    type: "button", class: "act", title: label, attrs: { "aria-label": label, ...extra },
    on: { click: onClick },
  }, h("span", { attrs: { "aria-hidden": "true" }, text: glyph }));
}

function toolbar(message, view) {
  const bar = h("div", { class: "msg-actions", attrs: { role: "group", "aria-label": "Message actions" } });
  const react = actionButton("React", "☺", () => view.onReact(message.seq, react),
    { "aria-haspopup": "dialog", "aria-expanded": "false" });
  bar.append(react, actionButton("Reply", "↩", () => view.onReply(message.seq)));
  if (view.canEdit(message)) bar.append(actionButton("Edit", "✎", () => view.onEdit(message.seq)));
  if (view.canDelete(message)) bar.append(actionButton("Delete", "🗑", () => view.onDelete(message.seq)));
  return bar;
}

/** The <li> of a line event: "Alice joined", "Bob left", ... */
export function lineNode(event) {
  const li = h("li", { class: "line" },
    h("p", { class: "line-text" },
      h("span", { text: lineText(event) }),
      h("time", { class: "small", dateTime: event.created_at, title: new Date(event.created_at).toLocaleString(), text: shortTime(event.created_at) })));
  li.dataset.eventSeq = String(event.seq);
  li.dataset.time = String(Date.parse(event.created_at) || 0);
  return li;
}
