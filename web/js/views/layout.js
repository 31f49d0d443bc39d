/** The signed-in frame: skip link, top bar (brand, connection, sound, notifications, account), chat list and pane in <main>. */
import { h, replaceChildren } from "/js/dom.js";
import { muted, setMuted } from "/js/notify.js";

/**
 * Build the frame inside `root` and return its parts.
 * @returns {{status: HTMLElement, sidebar: HTMLElement, main: HTMLElement, body: HTMLElement,
 *            signOut: HTMLButtonElement, notifications: HTMLButtonElement}}
 */
export function renderLayout(root, user) {
  const status = h("div", { class: "conn" });
  // My notification settings (a dialog); narrow screens show a bell.
  const notifications = h("button", {
    type: "button", class: "ghost notify-open", attrs: { "aria-haspopup": "dialog" },
  }, h("span", { class: "full-label", text: "Notifications" }),
  h("span", { class: "short-label", attrs: { "aria-hidden": "true" } }, h("span", { class: "bell-icon" })));
  const signOut = h("button", { type: "button", class: "ghost", text: "Sign out" });
  const sidebar = h("div", { class: "sidebar" });
  const main = h("div", { class: "pane" });
  const body = h("main", { id: "main", class: "body", tabIndex: -1 }, sidebar, main);
  const skip = h("a", {
    class: "skip-link", href: "#main", text: "Skip to main content",
    on: { click: (event) => { event.preventDefault(); body.focus(); } },
  });
  const header = h("header", { class: "topbar" },
    h("h1", {}, h("a", { class: "brand", href: "/", dataset: { route: "" } },
      h("span", { class: "logo", attrs: { "aria-hidden": "true" } }),
      h("span", { class: "brand-name", text: "chatire" }))),
    status,
    h("div", { class: "account" },
      soundToggle(),
      notifications,
      h("span", { class: "me", title: `@${user.username}` },
        h("span", { class: "avatar", attrs: { "aria-hidden": "true" }, text: initials(user.display_name || user.username) }),
        h("span", { class: "me-name", text: user.display_name || user.username })),
      signOut),
  );
  root.setAttribute("data-screen", "app");
  replaceChildren(root, skip, header, body);
  return { status, sidebar, main, body, signOut, notifications };
}

/** The chime's on/off switch (a toggle button), remembered by this browser. */
function soundToggle() {
  const button = h("button", {
    type: "button", class: "ghost sound", title: "Mute the new-message sound",
    attrs: { "aria-label": "Mute sound", "aria-pressed": String(muted()) },
  }, h("span", { class: "sound-icon", attrs: { "aria-hidden": "true" }, text: "♪" }));
  button.addEventListener("click", () => {
    const now = !muted();
    setMuted(now);
    button.setAttribute("aria-pressed", String(now));
  });
  return button;
}

/** Up to two initials for an avatar. */
export function initials(name) {
  const parts = String(name).trim().split(/[\s._-]+/).filter(Boolean);
  const letters = parts.length > 1 ? [parts[0], parts[1]] : [parts[0] || "?"];
  return letters.map((p) => [...p][0]).join("").toUpperCase().slice(0, 2);
}

/** A stable hue for a user id, for avatar colours. */
export function hue(id) {
  return (Number(id) * 137) % 360;
}
