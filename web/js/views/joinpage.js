/** The join page of an invite link (/i/<code>): which chat, who invited, and a Join button. */
import { api, describe } from "/js/api.js";
import { h, replaceChildren } from "/js/dom.js";
import { chatTitle } from "/js/views/chatlist.js";

function homeLink() {
  return h("a", { href: "/", class: "button ghost", dataset: { route: "" }, text: "Back to my chats" });
}

/**
 * A section asking whether to join through invite `code`; `onJoined(chat)` once joined (or
 * already a member: joining again changes nothing). Returns `{el}`.
 */
export function joinPage(code, { onJoined }) {
  const heading = h("h2", { text: "Opening the invite…", tabIndex: -1 });
  const body = h("div", { class: "join-body" });
  const el = h("section", { class: "center empty-state join-page", attrs: { "aria-labelledby": "join-title", "aria-busy": "true" } },
    heading, body);
  heading.id = "join-title";

  async function load() {
    try {
      const found = await api.invite(code);
      const title = chatTitle(found.chat);
      const by = found.invited_by.display_name || found.invited_by.username;
      heading.textContent = `Join ${title}`;
      const error = h("p", { class: "form-error", attrs: { role: "alert" } });
      const join = h("button", { type: "button", class: "primary", text: "Join chat" });
      join.addEventListener("click", async () => {
        join.disabled = true;
        join.textContent = "Joining…";
        error.textContent = "";
        try {
          const { chat } = await api.useInvite(code);
          onJoined(chat);
        } catch (err) {
          join.disabled = false;
          join.textContent = "Join chat";
          error.textContent = err.code === "not_found"
            ? "This invite no longer works: it expired, was used up or was revoked."
            : `Could not join: ${describe(err)}`;
        }
      });
      replaceChildren(body,
        h("p", { class: "join-what" }, h("strong", { text: by }), " invited you to join ", h("strong", { text: title }), "."),
        error,
        h("div", { class: "inline-actions" }, join, homeLink()));
      el.removeAttribute("aria-busy");
      join.focus();
    } catch (err) {
      el.removeAttribute("aria-busy");
      heading.textContent = err.code === "not_found" ? "This invite does not work" : "Cannot open this invite";
      replaceChildren(body,
        h("p", { text: err.code === "not_found"
          ? "The link is wrong, or the invite expired, was used up or was revoked. Ask for a new one."
          : describe(err) }),
        homeLink());
      heading.focus();
    }
  }

  load();
  return { el };
}
