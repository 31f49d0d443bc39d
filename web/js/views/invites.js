/** The invites of a chat (admins and the owner): make one (expiry, number of uses), copy, revoke. */
import { api, describe } from "/js/api.js";
import { h, labelled, replaceChildren, uid } from "/js/dom.js";
import { copyText } from "/js/views/copy.js";

/** Choices of the expiry select: [seconds or "", label]. */
const EXPIRIES = [["", "Never"], ["3600", "In 1 hour"], ["86400", "In 1 day"], ["604800", "In 7 days"], ["2592000", "In 30 days"]];
const MAX_USES = 100000;

/** "expires in 3 h", "expires in 6 days", "never expires". */
function expiryText(iso) {
  if (!iso) return "never expires";
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (seconds < 3600) return `expires in ${Math.max(1, Math.round(seconds / 60))} min`;
  if (seconds < 2 * 86400) return `expires in ${Math.round(seconds / 3600)} h`;
  return `expires in ${Math.round(seconds / 86400)} days`;
}

function usesText(left) {
  if (left === null || left === undefined) return "no limit on uses";
  return left === 1 ? "1 use left" : `${left} uses left`;
}

export class InvitesSection {
  /** @param {string} uri */
  constructor(uri) {
    this.uri = uri;
    this.invites = [];
    this.expiry = h("select", { name: "expires" },
      ...EXPIRIES.map(([value, label]) => h("option", { value, text: label })));
    this.uses = h("input", { type: "number", name: "max_uses", min: 1, max: MAX_USES, step: 1, inputMode: "numeric" });
    this.error = h("p", { class: "form-error", attrs: { role: "alert" } });
    this.create = h("button", { type: "submit", class: "primary", text: "Create invite" });
    this.status = h("p", { class: "small copy-note", attrs: { role: "status" } });
    this.form = h("form", { class: "invite-form", noValidate: true },
      h("div", { class: "field-row" },
        labelled("Expires", this.expiry).wrap,
        labelled("Uses", this.uses, "Empty: no limit.").wrap),
      this.error,
      this.create);
    this.list = h("ul", { class: "invite-list", attrs: { "aria-label": "Invites" } });
    this.el = h("section", { class: "settings-section", attrs: { "aria-labelledby": uid("invites") } });
    const heading = h("h3", { id: this.el.getAttribute("aria-labelledby"), text: "Invites" });
    replaceChildren(this.el, heading,
      h("p", { class: "hint", text: "An invite link lets one person in per use, even into an invite-only chat." }),
      this.form, this.status, this.list);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.make();
    });
  }

  /** Ask the server for the live invites. */
  async load() {
    try {
      this.invites = (await api.invites(this.uri)).invites;
      this.render();
    } catch (err) {
      this.error.textContent = `Could not load the invites: ${describe(err)}`;
    }
  }

  async make() {
    const raw = this.uses.value.trim();
    const maxUses = raw ? Number(raw) : null;
    if (raw && !(Number.isInteger(maxUses) && maxUses >= 1 && maxUses <= MAX_USES)) {
      this.error.textContent = `Uses: a whole number from 1 to ${MAX_USES}, or empty for no limit.`;
      this.uses.setAttribute("aria-invalid", "true");
      this.uses.focus();
      return;
    }
    this.uses.removeAttribute("aria-invalid");
    this.error.textContent = "";
    this.create.disabled = true;
    try {
      const { invite } = await api.createInvite(this.uri, { expiresIn: Number(this.expiry.value) || null, maxUses });
      this.invites = [invite, ...this.invites.filter((i) => i.code !== invite.code)];
      this.render();
      this.status.textContent = "Invite created";
      this.list.querySelector("input")?.focus();
    } catch (err) {
      this.error.textContent = describe(err);
    } finally {
      this.create.disabled = false;
    }
  }

  async revoke(invite, button) {
    button.disabled = true;
    try {
      await api.revokeInvite(this.uri, invite.code);
      this.invites = this.invites.filter((i) => i.code !== invite.code);
      this.render();
      this.status.textContent = "Invite revoked";
      this.create.focus();
    } catch (err) {
      button.disabled = false;
      this.error.textContent = `Could not revoke the invite: ${describe(err)}`;
    }
  }

  render() {
    if (!this.invites.length) {
      replaceChildren(this.list, h("li", { class: "muted small", text: "No invites yet." }));
      return;
    }
    replaceChildren(this.list, ...this.invites.map((invite, index) => {
      const field = h("input", { type: "text", readOnly: true, value: invite.url, class: "invite-field" });
      field.addEventListener("focus", () => field.select());
      const n = this.invites.length - index;
      const about = `${expiryText(invite.expires_at)} · ${usesText(invite.uses_left)} · by ${invite.created_by.display_name || invite.created_by.username}`;
      const copy = h("button", {
        type: "button", class: "ghost small-button", text: "Copy",
        attrs: { "aria-label": `Copy invite ${n}` },
        on: { click: () => copyText(invite.url, field, (text) => { this.status.textContent = text; }) },
      });
      const revoke = h("button", {
        type: "button", class: "ghost small-button danger-text", text: "Revoke",
        attrs: { "aria-label": `Revoke invite ${n}` },
      });
      revoke.addEventListener("click", () => this.revoke(invite, revoke));
      return h("li", { class: "invite", dataset: { code: invite.code } },
        labelled(`Invite ${n}`, field, about).wrap,
        h("div", { class: "invite-buttons" }, copy, revoke));
    }));
  }
}
