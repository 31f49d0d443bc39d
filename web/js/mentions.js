/** `@username` mentions as the server counts them: case-insensitive, whole word (`@bob.` yes, `@bob.smith` and `x@bob` no). */
import { h } from "/js/dom.js";

/** A character a username may hold (docs/protocol.md: `A-Z a-z 0-9 _ . -`). */
const NAME_CHAR = "A-Za-z0-9_.\\-";

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
}

/**
 * A global regex for `@username` as a whole word, the server's rule (chatire/notify/mentions.py):
 * not after a name character or another `@`, not followed by a name character other than a
 * `.` that ends the name (as in "@bob." at the end of a sentence).
 */
export function mentionPattern(username) {
  return new RegExp(`(?<![${NAME_CHAR}@])@${escape(username)}(?![A-Za-z0-9_-])(?!\\.[A-Za-z0-9_-])`, "gi");
}

const patterns = new Map();

function patternFor(username) {
  let re = patterns.get(username);
  if (!re) {
    re = mentionPattern(username);
    patterns.set(username, re);
  }
  re.lastIndex = 0;
  return re;
}

/** Whether `text` mentions `username`. */
export function mentions(text, username) {
  return Boolean(text && username) && patternFor(username).test(text);
}

/**
 * `parts` (strings and nodes, as linkify returns them) with each mention of `username` in
 * the strings wrapped in `<mark class="mention">`; nodes (links) are left as they are.
 */
export function markMentions(parts, username) {
  if (!username) return parts;
  const out = [];
  for (const part of parts) {
    if (typeof part !== "string") {
      out.push(part);
      continue;
    }
    const re = patternFor(username);
    let last = 0;
    for (const match of part.matchAll(re)) {
      if (match.index > last) out.push(part.slice(last, match.index));
      out.push(h("mark", { class: "mention", text: match[0] }));
      last = match.index + match[0].length;
    }
    if (last < part.length) out.push(part.slice(last));
  }
  return out;
}
