/**
 * My notifications (a dialog from the top bar): the level, the delay, a webhook (its secret
 * is never shown back: "a secret is set", replace or remove it), e-mail when the daemon has a
 * relay, "Send a test", and desktop notifications for this browser.
 */
import { api, describe } from "/js/api.js";
import { h, labelled, replaceChildren, uid } from "/js/dom.js";
import * as desktop from "/js/desktop.js";

/** The delays offered (seconds); another value the server has is offered as it is. */
const DELAYS = [[0, "Right away"], [30, "After 30 seconds"], [60, "After 1 minute"], [300, "After 5 minutes"],
  [900, "After 15 minutes"], [3600, "After 1 hour"]];
const LEVEL_OPTIONS = [
  ["all", "Every new message", "In every chat, unless you change it for a chat."],
  ["mentions", "Only when someone mentions me", "A message with @your-username in it."],
  ["none", "Nothing", "No webhook, e-mail or desktop notifications (chats you set to All still notify)."],
];
/** What a test result of the server says, in a sentence. */
const CHANNEL_NAMES = { webhook: "Webhook", email: "E-mail" };

function section(title, ...children) {
  const id = uid("notify");
  return h("section", { class: "settings-section", attrs: { "aria-labelledby": id } },
    h("h3", { id, text: title }), ...children);
}

export class NotificationsDialog {
  /**
   * @param {{levels: Levels, onClosed: () => void}} opts
   *   `levels` learns my default level from what the server answers.
   */
  constructor({ levels, onClosed }) {
    this.levels = levels;
    this.onClosed = onClosed;
    this.closed = false;
    this.settings = null;
    this.emailEnabled = false;
    this.secretMode = "none"; // none | set (kept) | replace | remove
    this.headingId = uid("notify-title");
    this.closeButton = h("button", {
      type: "button", class: "ghost close-button", attrs: { "aria-label": "Close notifications" },
      on: { click: () => this.close() },
    }, h("span", { attrs: { "aria-hidden": "true" }, text: "×" }));
    this.body = h("div", { class: "notify-body" }, h("p", { class: "muted", text: "Loading your settings…" }));
    this.dialog = h("dialog", { class: "dialog settings notify-dialog", attrs: { "aria-labelledby": this.headingId } },
      h("div", { class: "settings-head" }, h("h2", { id: this.headingId, text: "Notifications" }), this.closeButton),
      h("p", { class: "hint", text: "While you are away from a chat, chatire can tell you about new messages there." }),
      this.body);
    this.dialog.addEventListener("close", () => {
      this.closed = true;
      this.dialog.remove();
      this.onClosed();
    });
  }

  open() {
    document.body.append(this.dialog);
    this.dialog.showModal();
    this.closeButton.focus();
    this.load();
  }

  close() {
    if (!this.closed) this.dialog.close();
  }

  async load() {
    try {
      const data = await api.notifications();
      if (this.closed) return;
      this.emailEnabled = Boolean(data.email_enabled ?? data.notifications?.email_enabled);
      this.build();
      this.fill(data.notifications);
      this.levels.takeSettings(data.notifications);
      this.levelInputs.find((input) => input.checked)?.focus();
    } catch (err) {
      if (this.closed) return;
      const retry = h("button", { type: "button", class: "ghost", text: "Try again", on: { click: () => this.load() } });
      replaceChildren(this.body,
        h("p", { class: "form-error", attrs: { role: "alert" }, text: `Could not load your settings: ${describe(err)}` }),
        retry);
      retry.focus();
    }
  }

  build() {
    // -- the level --
    const group = uid("level");
    this.levelInputs = LEVEL_OPTIONS.map(([value]) => h("input", { type: "radio", name: group, value, id: uid("level-option") }));
    const levels = h("fieldset", { class: "radios" },
      h("legend", { class: "legend", text: "Tell me about" }),
      ...LEVEL_OPTIONS.map(([, label, hint], i) => h("div", { class: "radio" }, this.levelInputs[i],
        h("label", { htmlFor: this.levelInputs[i].id }, h("span", { text: label }), h("span", { class: "hint", text: hint })))));
    // -- the delay --
    this.delay = h("select", { name: "delay" });
    const delay = labelled("When", this.delay, "Only if you have not read the message by then and are not in the chat.");
    // -- the webhook --
    this.url = h("input", {
      type: "url", name: "webhook", autocomplete: "off", spellcheck: false, placeholder: "https://…",
      attrs: { inputmode: "url" },
    });
    const url = labelled("Webhook URL", this.url,
      "chatire POSTs each notification here as JSON; Slack- and Mattermost-style incoming webhooks work. Empty: none.");
    this.secretPart = h("div", { class: "secret-part" });
    this.secretField = h("input", { type: "password", name: "secret", autocomplete: "off", spellcheck: false });
    this.secretWrap = labelled("Secret (optional)", this.secretField,
      "Signs each request (X-Chatire-Signature: HMAC-SHA256 of the body). It is never shown again.").wrap;
    // -- e-mail, when the daemon has a relay --
    this.email = h("input", { type: "email", name: "email", autocomplete: "email", spellcheck: false });
    const email = this.emailEnabled
      ? labelled("E-mail address", this.email, "The same notifications as plain-text mail. Empty: none.").wrap
      : null;
    // -- save, errors --
    this.error = h("p", { class: "form-error", id: uid("notify-error"), attrs: { role: "alert" } });
    this.saved = h("span", { class: "small copy-note", attrs: { role: "status" } });
    this.save = h("button", { type: "submit", class: "primary", text: "Save" });
    this.form = h("form", { class: "notify-form", noValidate: true },
      section("What and when", levels, delay.wrap),
      section("Where", url.wrap, this.secretPart, email),
      this.error,
      h("div", { class: "inline-actions" }, this.save, this.saved));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.form.addEventListener("input", () => { this.saved.textContent = ""; });
    // -- test --
    this.testButton = h("button", { type: "button", class: "ghost", text: "Send a test", on: { click: () => this.test() } });
    this.testResult = h("div", { class: "test-result", attrs: { role: "status" } });
    const test = section("Try it",
      h("p", { class: "hint", text: "Sends a test notification through the webhook and e-mail saved above." }),
      this.testButton, this.testResult);
    replaceChildren(this.body, this.form, test, this.buildDesktop());
  }

  /** Desktop notifications: this browser's, asked for only when the button is pressed. */
  buildDesktop() {
    this.desktopText = h("p", { class: "hint" });
    this.desktopButton = h("button", { type: "button", class: "ghost", on: { click: () => this.toggleDesktop() } });
    this.desktopPart = section("Desktop notifications", this.desktopText, this.desktopButton);
    this.showDesktop();
    return this.desktopPart;
  }

  showDesktop() {
    const permission = desktop.permission();
    const on = desktop.enabled();
    this.desktopButton.hidden = permission === "unsupported" || permission === "denied";
    this.desktopButton.textContent = on ? "Turn off desktop notifications" : "Enable desktop notifications";
    this.desktopText.textContent = {
      unsupported: "This browser cannot show notifications.",
      denied: "This browser blocks notifications from chatire; allow them in its site settings to turn them on.",
    }[permission] || (on
      ? "On in this browser: a new message shows while chatire's tab is hidden (as your level for each chat says)."
      : "Off in this browser. With them on, a new message shows while chatire's tab is hidden.");
  }

  async toggleDesktop() {
    if (desktop.enabled()) desktop.disable();
    else await desktop.enable(); // the browser asks now, on this click
    if (this.closed) return;
    this.showDesktop();
    if (!this.desktopButton.hidden) this.desktopButton.focus();
  }

  /** Show the settings the server has. */
  fill(settings) {
    this.settings = settings;
    for (const input of this.levelInputs) input.checked = input.value === settings.level;
    const delay = Number(settings.delay);
    const choices = DELAYS.some(([s]) => s === delay) || !Number.isFinite(delay) ? DELAYS
      : [...DELAYS, [delay, `After ${delay} seconds`]].sort((a, b) => a[0] - b[0]);
    replaceChildren(this.delay, ...choices.map(([s, text]) => h("option", { value: String(s), text })));
    this.delay.value = String(delay);
    const hook = settings.webhook;
    this.url.value = hook && hook.url ? hook.url : "";
    this.secretField.value = "";
    this.setSecretMode(hook && hook.has_secret ? "set" : "none");
    if (this.emailEnabled) this.email.value = settings.email || "";
    this.url.removeAttribute("aria-invalid");
    this.email.removeAttribute("aria-invalid");
  }

  /**
   * The secret: "none" (a field for one), "set" (kept: "A secret is set" with Replace and
   * Remove), "replace" (a field for the new one), "remove" (goes when saved; Undo).
   */
  setSecretMode(mode, focus = false) {
    this.secretMode = mode;
    const button = (text, next, cls = "ghost small-button") => h("button", {
      type: "button", class: cls, text, on: { click: () => this.setSecretMode(next, true) },
    });
    if (mode === "set") {
      const replace = button("Replace secret", "replace");
      replaceChildren(this.secretPart,
        h("p", { class: "secret-note", text: "A secret is set." }),
        h("div", { class: "inline-actions" }, replace, button("Remove secret", "remove", "ghost small-button danger-text")));
      if (focus) replace.focus();
    } else if (mode === "remove") {
      const undo = button("Keep the secret", "set");
      replaceChildren(this.secretPart,
        h("p", { class: "secret-note" }, "The secret will be removed when you save."),
        h("div", { class: "inline-actions" }, undo));
      if (focus) undo.focus();
    } else if (mode === "replace") {
      this.secretField.value = "";
      this.secretWrap.querySelector("label").textContent = "New secret";
      replaceChildren(this.secretPart, this.secretWrap,
        h("div", { class: "inline-actions" }, button("Keep the current secret", "set")));
      if (focus) this.secretField.focus();
    } else {
      this.secretWrap.querySelector("label").textContent = "Secret (optional)";
      replaceChildren(this.secretPart, this.secretWrap);
    }
  }

  /** The PUT body from the form: only what the form holds. */
  changes() {
    const body = {
      level: (this.levelInputs.find((input) => input.checked) || {}).value || this.settings.level,
      delay: Number(this.delay.value),
    };
    const url = this.url.value.trim();
    if (!url) body.webhook = null;
    else {
      body.webhook = { url };
      const secret = this.secretField.value;
      if (this.secretMode === "remove") body.webhook.secret = null;
      else if ((this.secretMode === "none" || this.secretMode === "replace") && secret) body.webhook.secret = secret;
      // "set", or "replace" left empty: the secret is not sent, so the server keeps it.
    }
    if (this.emailEnabled) body.email = this.email.value.trim() || null;
    return body;
  }

  async submit() {
    this.error.textContent = "";
    this.saved.textContent = "";
    this.url.removeAttribute("aria-invalid");
    this.email.removeAttribute("aria-invalid");
    this.save.disabled = true;
    try {
      const data = await api.setNotifications(this.changes());
      if (this.closed) return;
      this.fill(data.notifications);
      this.levels.takeSettings(data.notifications);
      this.saved.textContent = "Saved";
    } catch (err) {
      if (this.closed) return;
      this.error.textContent = describe(err);
      // Point at the field the server names, when it names one.
      const field = /mail/i.test(err.message || "") ? this.email : /webhook|url|secret/i.test(err.message || "") ? this.url : null;
      if (field && field.isConnected) {
        field.setAttribute("aria-invalid", "true");
        field.setAttribute("aria-errormessage", this.error.id);
      }
    } finally {
      this.save.disabled = false;
    }
  }

  /** "Send a test": what each channel answered ("delivered (200)", "failed: ..."). */
  async test() {
    this.testButton.disabled = true;
    replaceChildren(this.testResult, h("p", { class: "muted", text: "Sending…" }));
    try {
      const data = await api.testNotifications();
      if (this.closed) return;
      const results = Object.entries((data && data.results) || {}).filter(([, v]) => v !== null && v !== undefined);
      if (!results.length) {
        replaceChildren(this.testResult, h("p", { text: "Nothing to test: save a webhook URL or an e-mail address first." }));
      } else {
        replaceChildren(this.testResult, h("ul", { class: "test-lines" }, ...results.map(([channel, text]) => {
          const ok = /^delivered/i.test(String(text));
          return h("li", { class: ok ? "test-ok" : "test-failed" },
            h("span", { class: "test-mark", attrs: { "aria-hidden": "true" }, text: ok ? "✓" : "✗" }),
            h("span", { text: `${CHANNEL_NAMES[channel] || channel}: ${text}` }));
        })));
      }
    } catch (err) {
      if (this.closed) return;
      replaceChildren(this.testResult, h("p", { class: "form-error", text: describe(err) }));
    } finally {
      this.testButton.disabled = false;
    }
  }
}
