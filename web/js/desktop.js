/** Desktop notifications (the Notification API): turned on by a click, shown for messages by others while the tab is hidden. */

const ON_KEY = "chatire.desktop";
/** How much of a message a notification shows. */
const BODY_CHARS = 140;

let onHere = false; // the choice when storage is disabled

/** Whether this browser has the Notification API at all. */
export function supported() {
  return typeof window.Notification === "function";
}

/** "granted", "denied", "default", or "unsupported". */
export function permission() {
  return supported() ? window.Notification.permission : "unsupported";
}

/** Whether the user turned desktop notifications on in this browser (and still allows them). */
export function enabled() {
  if (permission() !== "granted") return false;
  try { return localStorage.getItem(ON_KEY) === "1"; } catch { return onHere; }
}

function remember(value) {
  try {
    if (value) localStorage.setItem(ON_KEY, "1");
    else localStorage.removeItem(ON_KEY);
  } catch { /* storage disabled: the choice lasts as long as the page */ }
  onHere = Boolean(value);
}

/**
 * Turn desktop notifications on: asks the browser for permission (call it from a click:
 * browsers only ask on a user gesture). Resolves to the permission it ended with.
 */
export async function enable() {
  if (!supported()) return "unsupported";
  let result;
  try {
    result = await window.Notification.requestPermission(); // "granted" at once if it was
  } catch {
    result = window.Notification.permission;
  }
  remember(result === "granted");
  return result;
}

/** Turn them off in this browser (the browser's permission stays as it is). */
export function disable() {
  remember(false);
}

/**
 * Show a notification for `message` (by someone else) of the chat named `chatName`, if they
 * are on and the tab is hidden; one per chat at a time (a newer one replaces it). A click
 * brings the tab to the front and calls `onClick`.
 */
export function show(message, chatName, onClick) {
  if (!enabled() || !document.hidden) return null;
  const who = message.user.display_name || message.user.username;
  let text = String(message.message || "").replace(/\s+/g, " ").trim();
  if ([...text].length > BODY_CHARS) text = `${[...text].slice(0, BODY_CHARS - 1).join("")}…`;
  let note;
  try {
    note = new window.Notification(chatName, {
      body: `${who}: ${text}`, tag: `chatire-${message.chat}`, lang: document.documentElement.lang || undefined,
    });
  } catch {
    return null; // e.g. a browser that only shows them from a service worker
  }
  note.addEventListener("click", () => {
    window.focus();
    note.close();
    onClick();
  });
  return note;
}
