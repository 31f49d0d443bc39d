/** Message box: Enter sends, Shift+Enter breaks the line, `@` offers members, live character counter, the daemon's limit, and what it replies to. */
import { limits } from "/js/config.js";
import { h, charCount, keepChars, uid } from "/js/dom.js";
import { MentionBox } from "/js/views/mentionbox.js";

const TYPING_EVERY_MS = 3000;

export class Composer {
  /**
   * @param {{onSend: (text: string, replyTo: number|null) => void, onTyping: () => void,
   *          mentionable?: () => Array<object>}} handlers
   *   `mentionable` gives the members `@` offers (the chat's, without me).
   */
  constructor({ onSend, onTyping, mentionable = () => [] }) {
    this.onSend = onSend;
    this.onTyping = onTyping;
    this.lastTyping = 0;
    this.replyTo = null;
    this.max = limits.message_chars; // the daemon's --max-message-chars
    const counterId = uid("counter");
    this.input = h("textarea", {
      id: uid("message"), name: "message", rows: 1, placeholder: "Write a message…",
      attrs: { "aria-describedby": counterId, enterkeyhint: "send" },
    });
    this.counter = h("span", { id: counterId, class: "counter small" });
    this.button = h("button", { type: "submit", class: "primary send", text: "Send", disabled: true });
    this.counterId = counterId;
    this.replyText = h("span", { class: "reply-text" });
    this.replyId = uid("reply");
    this.reply = h("div", { class: "reply-bar small", hidden: true },
      h("span", { id: this.replyId, class: "reply-what" },
        h("span", { class: "reply-label", text: "Replying to " }), this.replyText),
      h("button", {
        type: "button", class: "ghost reply-cancel", title: "Cancel reply",
        attrs: { "aria-label": "Cancel reply" }, on: { click: () => this.clearReply(true) },
      }, h("span", { attrs: { "aria-hidden": "true" }, text: "×" })));
    this.mentions = new MentionBox(this.input, { candidates: mentionable });
    this.form = h("form", { class: "composer", noValidate: true },
      this.reply,
      this.mentions.el,
      h("label", { htmlFor: this.input.id, class: "composer-label small", text: "Message" }),
      h("div", { class: "composer-row" }, this.input, this.button),
      h("div", { class: "composer-foot small" },
        h("span", { class: "muted hint", text: "Enter to send · Shift+Enter for a new line" }), this.counter));
    this.el = this.form;

    keepChars(this.input, this.max); // first: the counter below sees the capped text
    this.input.addEventListener("input", () => {
      this.update();
      this.autosize();
      const now = Date.now();
      if (this.input.value.trim() && now - this.lastTyping >= TYPING_EVERY_MS) {
        this.lastTyping = now;
        this.onTyping();
      }
    });
    this.input.addEventListener("keydown", (event) => {
      if (this.mentions.onKey(event)) return; // the open list of members takes its keys first
      if (event.key === "Escape" && this.replyTo !== null) {
        event.preventDefault();
        this.clearReply(true);
        return;
      }
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        this.submit();
      }
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.update();
  }

  /** Trimmed length in code points (as the server counts) and whether it can be sent. */
  measure() {
    const count = charCount(this.input.value);
    return { count, ok: count > 0 && count <= this.max };
  }

  update() {
    const { count, ok } = this.measure();
    const over = count > this.max;
    this.button.disabled = !ok;
    this.counter.textContent = over
      ? `${count} / ${this.max} — ${count - this.max} too many`
      : `${count} / ${this.max}`;
    this.counter.classList.toggle("over", over);
    this.counter.classList.toggle("near", !over && count > this.max * 0.9);
    if (over) this.input.setAttribute("aria-invalid", "true");
    else this.input.removeAttribute("aria-invalid");
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight + 2, Math.round(window.innerHeight * 0.4))}px`;
  }

  submit() {
    const { ok } = this.measure();
    if (!ok) return;
    const text = this.input.value.trim();
    const replyTo = this.replyTo;
    this.input.value = "";
    this.mentions.close();
    this.lastTyping = 0;
    this.clearReply();
    this.update();
    this.autosize();
    this.onSend(text, replyTo);
    this.input.focus();
  }

  /** Answer the message `seq`: show "Replying to <author>: <text>" with a way to cancel. */
  setReply(seq, message) {
    this.replyTo = seq;
    const who = message.user.display_name || message.user.username;
    this.replyText.textContent = `${who}: ${message.message.replace(/\s+/g, " ")}`;
    this.reply.hidden = false;
    this.input.setAttribute("aria-describedby", `${this.replyId} ${this.counterId}`);
    this.input.focus();
  }

  /** Stop answering a message (the quoted message was deleted, or the user cancelled). */
  clearReply(refocus = false) {
    this.replyTo = null;
    this.reply.hidden = true;
    this.replyText.textContent = "";
    this.input.setAttribute("aria-describedby", this.counterId);
    if (refocus) this.input.focus();
  }

  focus() {
    this.input.focus();
  }
}
