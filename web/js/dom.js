/** Tiny DOM helpers: build elements from tag, properties and children (text is always text). */

/**
 * Create an element. `props` keys: `class`, `text`, `dataset`, `style` (CSS properties),
 * `attrs`, `on` (event map),
 * anything else is set as a property. Children may be nodes, strings (as text) or null.
 * @param {string} tag
 * @param {object} [props]
 * @param {...(Node|string|null|undefined|false)} children
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") {
      // CSSOM, not the style attribute: allowed under a strict Content-Security-Policy.
      for (const [name, v] of Object.entries(value)) el.style.setProperty(name, String(v));
    }
    else if (key === "attrs") {
      for (const [name, v] of Object.entries(value)) {
        if (v !== undefined && v !== null && v !== false) el.setAttribute(name, v === true ? "" : String(v));
      }
    } else if (key === "on") {
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    } else el[key] = value;
  }
  append(el, children);
  return el;
}

/** Append nodes or strings (as text nodes) to `parent`, skipping empty values. */
export function append(parent, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Remove every child of `el`, then append `children`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A fresh id for label/field pairs: `prefix-N`. */
let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A `<label>` + field pair sharing a generated id; returns `{ wrap, label, field }`. */
export function labelled(text, field, hint) {
  field.id ||= uid("f");
  const label = h("label", { htmlFor: field.id, text });
  const wrap = h("div", { class: "field" }, label, field);
  if (hint) {
    const note = h("p", { class: "hint", id: uid("hint"), text: hint });
    field.setAttribute("aria-describedby", note.id);
    wrap.append(note);
  }
  return { wrap, label, field };
}

/** Characters as the server counts them (Unicode code points), after trimming. */
export function charCount(text) {
  let n = 0;
  for (const _ of text.trim()) n += 1;
  return n;
}

/**
 * Keep `field` (an input or a textarea) to at most `max` characters as charCount counts
 * them, the way the server does. Whatever goes past the limit is refused where it was
 * typed or pasted (before the caret) and the rest of the text stays. (The `maxlength`
 * attribute counts UTF-16 code units and white space the server strips, so it would
 * refuse text the server takes.) Returns whether anything was refused.
 */
export function capChars(field, max) {
  let over = charCount(field.value) - max;
  if (over <= 0) return false;
  const caret = field.selectionEnd ?? field.value.length;
  const before = Array.from(field.value.slice(0, caret));
  const after = field.value.slice(caret);
  while (over > 0 && before.length) {
    before.length = Math.max(0, before.length - over);
    over = charCount(before.join("") + after) - max;
  }
  const head = before.join("");
  field.value = head + after;
  field.setSelectionRange(head.length, head.length);
  return true;
}

/** Apply capChars on every edit of `field` (after an input method has finished composing). */
export function keepChars(field, max) {
  const cap = (event) => {
    if (!event.isComposing) capChars(field, max);
  };
  field.addEventListener("input", cap);
  field.addEventListener("compositionend", () => {
    if (capChars(field, max)) field.dispatchEvent(new Event("input"));
  });
}

/** Local time of an ISO timestamp, e.g. "14:05" (today) or "3 Mar, 14:05". */
export function shortTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const now = new Date();
  const sameDay = when.toDateString() === now.toDateString();
  const opts = sameDay
    ? { hour: "2-digit", minute: "2-digit" }
    : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  return when.toLocaleString(undefined, opts);
}

/** http(s) URLs in text; trailing punctuation is left out of the link. */
const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;
const TRAILING = /[.,;:!?'"\]}>]$/;

/** Drop trailing punctuation, and a ")" that closes no "(" of the URL. */
function trimUrl(raw) {
  let url = raw;
  for (;;) {
    if (TRAILING.test(url)) url = url.slice(0, -1);
    else if (url.endsWith(")") && url.split(")").length > url.split("(").length) url = url.slice(0, -1);
    else return url;
  }
}

/**
 * `text` as a list of strings and <a> nodes: each http/https URL becomes a link that opens
 * in a new tab without a referrer. Built as DOM nodes, never parsed as HTML; anything that
 * is not an http(s) URL (javascript:, data:, markup) stays text.
 */
export function linkify(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    const raw = trimUrl(match[0]);
    let url;
    try { url = new URL(raw); } catch { continue; }
    if (url.protocol !== "http:" && url.protocol !== "https:") continue;
    if (match.index > last) parts.push(text.slice(last, match.index));
    parts.push(h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer", text: raw }));
    last = match.index + raw.length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** The day of a timestamp (ms) for a separator: "Today", "Yesterday" or e.g. "Monday 2 March 2026". */
export function dayLabel(ms) {
  const when = new Date(ms);
  if (Number.isNaN(when.getTime())) return "";
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (when.toDateString() === today.toDateString()) return "Today";
  if (when.toDateString() === yesterday.toDateString()) return "Yesterday";
  return when.toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
}

/** A chat list's time of the last message: "14:05" today, "Yesterday", else "3 Mar". */
export function listTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const label = dayLabel(when.getTime());
  if (label === "Today") return when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (label === "Yesterday") return label;
  return when.toLocaleDateString(undefined, { day: "numeric", month: "short" });
}
