/**
 * The chat settings dialog (admins and the owner): rename, who can join, invites, members
 * (make admin or member, hand over, remove, ban) and, for the owner, deleting the chat
 * behind a typed confirmation.
 */
import { api, describe } from "/js/api.js";
import { limits } from "/js/config.js";
import { h, keepChars, labelled, uid } from "/js/dom.js";
import { chatTitle } from "/js/views/chatlist.js";
import { confirmDialog } from "/js/views/confirm.js";
import { InvitesSection } from "/js/views/invites.js";
import { memberButton, memberName, renderMembers } from "/js/views/members.js";

const RUNS = new Set(["owner", "admin"]);

function section(title, ...children) {
  const id = uid("settings");
  const heading = h("h3", { id, text: title, tabIndex: -1 });
  return { el: h("section", { class: "settings-section", attrs: { "aria-labelledby": id } }, heading, ...children), heading };
}

export class SettingsDialog {
  /**
   * @param {{uri: string, me: object, state: () => {chat, members, role}, presenceOf: (id) => object,
   *          onChat: (chat) => void, onMembers: () => void, onDelete: () => Promise<void>,
   *          onClosed: () => void}} opts
   *   `state` is the room's view of the chat now; `onChat` takes a chat the server returned,
   *   `onMembers` asks for the members again, `onDelete` deletes the chat (it may throw).
   */
  constructor(opts) {
    Object.assign(this, opts);
    this.closed = false;
    this.headingId = uid("settings-title");
    this.buildName();
    this.buildJoin();
    this.invitesPart = new InvitesSection(this.uri);
    this.buildMembers();
    this.buildDanger();
    this.closeButton = h("button", {
      type: "button", class: "ghost close-button", attrs: { "aria-label": "Close settings" },
      on: { click: () => this.close() },
    }, h("span", { attrs: { "aria-hidden": "true" }, text: "×" }));
    this.dialog = h("dialog", { class: "dialog settings", attrs: { "aria-labelledby": this.headingId } },
      h("div", { class: "settings-head" }, h("h2", { id: this.headingId, text: "Chat settings" }), this.closeButton),
      this.name.el, this.join.el, this.invitesPart.el, this.membersPart.el, this.danger.el);
    this.dialog.addEventListener("close", () => {
      this.closed = true;
      this.dialog.remove();
      this.onClosed();
    });
  }

  /** Show it; `focus` is "name" (the first field) or "invites" (the new invite's controls). */
  open(focus = "name") {
    document.body.append(this.dialog);
    this.update();
    this.dialog.showModal();
    this.invitesPart.load();
    if (focus === "invites") {
      this.invitesPart.expiry.focus();
      this.invitesPart.el.scrollIntoView({ block: "nearest" });
    } else this.nameField.focus();
  }

  close() {
    if (!this.closed) this.dialog.close();
  }

  buildName() {
    this.nameField = h("input", { type: "text", name: "title", autocomplete: "off" });
    keepChars(this.nameField, limits.title_chars);
    this.nameField.addEventListener("input", () => { this.nameDirty = true; });
    this.nameError = h("p", { class: "form-error", attrs: { role: "alert" } });
    this.nameNote = h("span", { class: "small copy-note", attrs: { role: "status" } });
    const save = h("button", { type: "submit", class: "primary", text: "Save name" });
    const form = h("form", { noValidate: true },
      labelled("Chat name", this.nameField).wrap, this.nameError,
      h("div", { class: "inline-actions" }, save, this.nameNote));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      save.disabled = true;
      this.nameError.textContent = "";
      try {
        const { chat } = await api.updateChat(this.uri, { title: this.nameField.value.trim() });
        this.nameDirty = false;
        this.onChat(chat);
        this.nameNote.textContent = "Saved";
      } catch (err) {
        this.nameError.textContent = describe(err);
      } finally {
        save.disabled = false;
      }
    });
    this.name = section("Name", form);
  }

  buildJoin() {
    const name = uid("join");
    const option = (value, label, hint) => {
      const input = h("input", { type: "radio", name, value, id: uid("join-option") });
      input.addEventListener("change", () => { if (input.checked) this.setJoin(value); });
      return { input, el: h("div", { class: "radio" }, input,
        h("label", { htmlFor: input.id }, h("span", { text: label }), h("span", { class: "hint", text: hint }))) };
    };
    this.joinLink = option("link", "Anyone with the link", "Whoever has the chat's link can join.");
    this.joinInvite = option("invite", "Only people with an invite", "The chat's link alone lets nobody in.");
    this.joinError = h("p", { class: "form-error", attrs: { role: "alert" } });
    this.join = section("Who can join",
      h("fieldset", { class: "radios" }, h("legend", { class: "sr-only", text: "Who can join" }),
        this.joinLink.el, this.joinInvite.el),
      this.joinError);
  }

  async setJoin(value) {
    this.joinError.textContent = "";
    try {
      const { chat } = await api.updateChat(this.uri, { join: value });
      this.onChat(chat);
    } catch (err) {
      this.joinError.textContent = describe(err);
      this.update(); // back to what the chat has
    }
  }

  buildMembers() {
    this.memberList = h("ul", { class: "members manage" });
    this.membersError = h("p", { class: "form-error", attrs: { role: "alert" } });
    this.membersPart = section("Members", this.membersError, this.memberList);
  }

  buildDanger() {
    const remove = h("button", { type: "button", class: "danger", text: "Delete chat…" });
    remove.addEventListener("click", () => this.deleteChat(remove));
    this.danger = section("Delete chat",
      h("p", { class: "hint", text: "Deletes every message, invite and membership of this chat, for everyone." }),
      remove);
  }

  /** Draw what the room knows now: title, join rule, members, what my role allows. */
  update() {
    if (this.closed) return;
    const { chat, members, role } = this.state();
    if (!RUNS.has(role) || !chat || chat.kind === "direct") {
      this.close();
      return;
    }
    this.title = chatTitle(chat);
    if (!this.nameDirty && document.activeElement !== this.nameField) this.nameField.value = chat.title || "";
    this.joinLink.input.checked = chat.join !== "invite";
    this.joinInvite.input.checked = chat.join === "invite";
    this.danger.el.hidden = role !== "owner";
    renderMembers(this.memberList, members || [], {
      me: this.me, presenceOf: this.presenceOf, buttons: (m) => this.buttonsFor(m, role),
    });
  }

  /** What I may do to member `m`: the owner gives roles, hands over, removes anyone; an admin removes members. */
  buttonsFor(m, role) {
    if (m.id === this.me.id || m.role === "owner") return [];
    const name = memberName(m);
    const out = [];
    if (role === "owner") {
      out.push(m.role === "admin"
        ? memberButton("Make member", `Make member: ${name}`, `role-${m.id}`, () => this.setRole(m, "member"))
        : memberButton("Make admin", `Make admin: ${name}`, `role-${m.id}`, () => this.setRole(m, "admin")));
      out.push(memberButton("Make owner", `Make owner: ${name}`, `owner-${m.id}`, () => this.setRole(m, "owner")));
    }
    if (role === "owner" || m.role === "member") {
      out.push(memberButton("Remove", `Remove ${name}`, `remove-${m.id}`, () => this.remove(m, false), "ghost danger-text"));
      out.push(memberButton("Ban", `Ban ${name}`, `ban-${m.id}`, () => this.remove(m, true), "ghost danger-text"));
    }
    return out;
  }

  /** After a nested question: back to the control it came from, or to the section. */
  refocus(key, heading) {
    if (this.closed) return;
    const again = key && this.dialog.querySelector(`[data-key="${CSS.escape(key)}"]`);
    (again || heading).focus();
  }

  async setRole(m, role) {
    const name = memberName(m);
    const key = document.activeElement?.dataset?.key;
    if (role === "owner") {
      const ok = await confirmDialog({
        title: `Make ${name} the owner?`,
        text: `${name} will own “${this.title}”: only the owner gives roles and may delete the chat. You become an admin.`,
        confirmLabel: "Make owner",
      });
      if (!ok) {
        this.refocus(key, this.membersPart.heading);
        return;
      }
    }
    this.membersError.textContent = "";
    try {
      await api.setRole(this.uri, m.id, role);
      this.onMembers();
    } catch (err) {
      this.membersError.textContent = `Could not change ${name}'s role: ${describe(err)}`;
    }
    this.refocus(key, this.membersPart.heading);
  }

  async remove(m, ban) {
    const name = memberName(m);
    const { chat } = this.state();
    const again = chat && chat.join === "invite" ? "They can join again only with an invite." : "They can join again with the link.";
    const ok = await confirmDialog({
      title: ban ? `Ban ${name}?` : `Remove ${name}?`,
      text: ban
        ? `${name} leaves “${this.title}” at once and cannot join again, by link or invite.`
        : `${name} leaves “${this.title}” at once. ${again}`,
      confirmLabel: ban ? "Ban" : "Remove",
      danger: true,
    });
    if (ok) {
      this.membersError.textContent = "";
      try {
        await api.removeMember(this.uri, m.id, ban);
        this.onMembers();
      } catch (err) {
        this.membersError.textContent = `Could not remove ${name}: ${describe(err)}`;
      }
    }
    this.refocus(ok ? null : `${ban ? "ban" : "remove"}-${m.id}`, this.membersPart.heading);
  }

  async deleteChat(button) {
    const title = this.title;
    const { chat } = this.state();
    const named = Boolean(chat && chat.title && chat.title.trim());
    const ok = await confirmDialog({
      title: `Delete “${title}”?`,
      text: "Every message, invite and membership of this chat is erased, for everyone. This cannot be undone.",
      confirmLabel: "Delete chat",
      danger: true,
      typed: {
        label: named ? "Type the chat's name, or “delete”, to confirm" : "Type “delete” to confirm",
        accepts: (value) => value.trim().toLowerCase() === "delete" || (named && value.trim() === chat.title.trim()),
      },
    });
    if (!ok) {
      this.refocus(null, button);
      return;
    }
    button.disabled = true;
    try {
      await this.onDelete();
      this.close();
    } catch (err) {
      button.disabled = false;
      this.danger.el.querySelector(".form-error")?.remove();
      button.after(h("p", { class: "form-error", attrs: { role: "alert" }, text: `Could not delete the chat: ${describe(err)}` }));
      button.focus();
    }
  }
}
