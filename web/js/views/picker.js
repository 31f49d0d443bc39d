/** The reaction picker: a few common emoji plus those already on the message; Esc or a click outside closes it. */
import { h } from "/js/dom.js";

export const COMMON_EMOJI = ["👍", "❤️", "😂", "😮", "😢", "🎉", "🙏", "👀"];

/**
 * Open a picker inside `host` for the button `opener`. `current` lists the message's
 * reactions ({emoji, users}); `meId` tells which are mine (shown pressed; picking one
 * takes it back). `onPick(emoji, mine)` is called once; returns a function that closes it.
 */
export function openPicker(host, opener, { current, meId, onPick }) {
  const emojis = [...COMMON_EMOJI];
  for (const r of current) if (!emojis.includes(r.emoji)) emojis.push(r.emoji);
  const mineSet = new Set(current.filter((r) => r.users.includes(meId)).map((r) => r.emoji));
  let closed = false;
  const panel = h("div", {
    class: "picker", attrs: { role: "dialog", "aria-label": "Add a reaction" },
  }, ...emojis.map((emoji) => h("button", {
    type: "button", class: "pick", title: mineSet.has(emoji) ? `Take back ${emoji}` : `React with ${emoji}`,
    attrs: { "aria-pressed": String(mineSet.has(emoji)) },
    on: { click: () => { close(true); onPick(emoji, mineSet.has(emoji)); } },
    text: emoji,
  })));

  function close(refocus) {
    if (closed) return;
    closed = true;
    // Back to the button first, while the toolbar is still shown (it hides without focus).
    if (refocus && opener.isConnected) opener.focus();
    panel.remove();
    opener.setAttribute("aria-expanded", "false");
    host.classList.remove("picking");
    document.removeEventListener("pointerdown", outside, true);
  }

  function outside(event) {
    if (!panel.contains(event.target) && event.target !== opener && !opener.contains(event.target)) close(false);
  }

  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close(true);
    } else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      const buttons = [...panel.querySelectorAll("button")];
      const at = buttons.indexOf(document.activeElement);
      const next = buttons[(at + (event.key === "ArrowRight" ? 1 : -1) + buttons.length) % buttons.length];
      event.preventDefault();
      next.focus();
    }
  });
  panel.addEventListener("focusout", (event) => {
    if (event.relatedTarget && !panel.contains(event.relatedTarget) && event.relatedTarget !== opener) close(false);
  });
  document.addEventListener("pointerdown", outside, true);
  opener.setAttribute("aria-expanded", "true");
  host.classList.add("picking");
  host.append(panel);
  panel.querySelector("button").focus({ preventScroll: true });
  panel.scrollIntoView({ block: "nearest" });
  return () => close(false);
}
