/** Notices of a chat that ended for me: in place of the open chat, or a passing note for one in the background. */
import { h, replaceChildren } from "/js/dom.js";

const TOAST_MS = 10000;

/** What to say when a chat ends: `reason` is "removed", "deleted", "left" or "self-deleted". */
export function endedText(title, reason) {
  if (reason === "removed") return `You were removed from ${title}`;
  if (reason === "deleted") return `${title} was deleted`;
  if (reason === "self-deleted") return `You deleted ${title}`;
  return `You left ${title}`;
}

/** The pane shown in place of a chat that ended while it was open. */
export function endedPane(title, reason) {
  const heading = h("h2", { text: endedText(title, reason), tabIndex: -1 });
  const more = reason === "removed"
    ? "An admin took you out of this chat; its messages are no longer shown to you."
    : reason === "left" ? "You left this chat in another tab or on another device."
      : "Its messages and members are gone.";
  const el = h("section", { class: "center empty-state ended", attrs: { role: "alert" } },
    heading,
    h("p", { text: more }),
    h("a", { href: "/", class: "button primary", dataset: { route: "" }, text: "Back to my chats" }));
  return { el, heading };
}

/** A corner note that says something for a few seconds (a polite status, never stealing the focus). */
export class Toast {
  constructor(host) {
    this.text = h("span", {});
    this.close = h("button", {
      type: "button", class: "ghost small-button", attrs: { "aria-label": "Dismiss" },
      on: { click: () => this.hide() },
    }, h("span", { attrs: { "aria-hidden": "true" }, text: "×" }));
    this.box = h("div", { class: "toast", hidden: true }, this.text, this.close);
    this.region = h("div", { class: "toast-region", attrs: { role: "status" } }, this.box);
    host.append(this.region);
  }

  show(text) {
    replaceChildren(this.text, text);
    this.box.hidden = false;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.hide(), TOAST_MS);
  }

  hide() {
    clearTimeout(this.timer);
    this.box.hidden = true;
  }
}
