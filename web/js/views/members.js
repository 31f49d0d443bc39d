/** A chat's members: avatar with an online dot, name, role badge, "online" or "last seen ...", and per-member buttons. */
import { h, replaceChildren } from "/js/dom.js";
import { seenText } from "/js/presence.js";
import { initials, hue } from "/js/views/layout.js";

const ROLE_NAMES = { owner: "Owner", admin: "Admin" };

export function memberName(m) {
  return (m && (m.display_name || m.username)) || "Someone";
}

/** The avatar with a dot that is green while the member is online. */
export function avatarWithDot(user, online) {
  return h("span", { class: "avatar-wrap", attrs: { "aria-hidden": "true" } },
    h("span", { class: "avatar", text: initials(memberName(user)), style: { "--hue": hue(user.id) } }),
    h("span", { class: online ? "presence-dot online" : "presence-dot" }));
}

export function roleBadge(role) {
  return ROLE_NAMES[role] ? h("span", { class: `role-badge role-${role}`, text: ROLE_NAMES[role] }) : null;
}

/**
 * Fill `list` (a <ul>) with one row per member. `presenceOf(id)` gives {online, lastSeen};
 * `buttons(member)` the row's controls (each with a `data-key` unique in the list). The
 * control that had the focus has it again after the redraw.
 */
export function renderMembers(list, members, { me, presenceOf, buttons = () => [], roles = true }) {
  const active = list.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  replaceChildren(list, ...members.map((m) => {
    const presence = presenceOf(m.id);
    const controls = buttons(m).filter(Boolean);
    return h("li", { dataset: { user: String(m.id) } },
      avatarWithDot(m, presence.online),
      h("span", { class: "member-text" },
        h("span", { class: "member-line" },
          h("span", { class: "member-name" }, memberName(m),
            m.id === me.id ? h("span", { class: "muted", text: " (you)" }) : null),
          roles ? roleBadge(m.role) : null),
        h("span", { class: "muted small member-seen", text: seenText(presence) }),
        h("span", { class: "muted small handle", text: `@${m.username}` })),
      controls.length ? h("span", { class: "member-buttons" }, ...controls) : null);
  }));
  if (active) list.querySelector(`[data-key="${CSS.escape(active)}"]`)?.focus();
}

/** A small button of a member row; `key` finds it again after a redraw. */
export function memberButton(label, accessibleName, key, onClick, cls = "ghost") {
  return h("button", {
    type: "button", class: `${cls} small-button`, text: label, dataset: { key },
    attrs: { "aria-label": accessibleName }, on: { click: onClick },
  });
}
