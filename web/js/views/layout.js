/** The signed-in frame: top bar (brand, connection status, account), chat sidebar, main pane. */
import { h, replaceChildren } from "/js/dom.js";

/**
 * Build the frame inside `root` and return its parts.
 * @returns {{status: HTMLElement, sidebar: HTMLElement, main: HTMLElement, signOut: HTMLButtonElement}}
 */
export function renderLayout(root, user) {
  const status = h("div", { class: "conn" });
  const signOut = h("button", { type: "button", class: "ghost", text: "Sign out" });
  const sidebar = h("aside", { class: "sidebar", attrs: { "aria-label": "Your chats" } });
  const main = h("main", { class: "pane", attrs: { "aria-label": "Chat" } });
  const header = h("header", { class: "topbar" },
    h("a", { class: "brand", href: "/", dataset: { route: "" } },
      h("span", { class: "logo", attrs: { "aria-hidden": "true" } }), "chatire"),
    status,
    h("div", { class: "account" },
      h("span", { class: "me", title: `@${user.username}` },
        h("span", { class: "avatar", attrs: { "aria-hidden": "true" }, text: initials(user.display_name || user.username) }),
        h("span", { class: "me-name", text: user.display_name || user.username })),
      signOut),
  );
  root.setAttribute("data-screen", "app");
  replaceChildren(root, header, h("div", { class: "body" }, sidebar, main));
  return { status, sidebar, main, signOut };
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
