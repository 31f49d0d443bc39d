/**
 * `@` in the composer: a listbox of the chat's members matching what follows the `@` (the
 * ARIA combobox pattern on the message box: arrows move, Enter or Tab picks, Esc closes, a
 * click picks); picking puts `@username ` in place of what was typed.
 */
import { h, uid } from "/js/dom.js";

/** At most this many members are offered at once. */
const SHOWN = 8;
/** `@` and what follows it, up to the caret: at the start or after a character that cannot end a username. */
const TOKEN = /(?:^|[^A-Za-z0-9_.\-@])@([A-Za-z0-9_.-]*)$/;

export class MentionBox {
  /**
   * @param {HTMLTextAreaElement} input  the message box (it becomes the combobox)
   * @param {{candidates: () => Array<{id, username, display_name}>}} opts
   *   `candidates` gives the members that may be offered (everyone but me).
   */
  constructor(input, { candidates }) {
    this.input = input;
    this.candidates = candidates;
    this.matches = [];
    this.active = -1;
    this.start = -1; // where the `@` being completed is
    this.dismissed = -1; // the `@` whose list Esc closed: not offered again until another one
    this.list = h("ul", {
      id: uid("mentions"), class: "mention-list", hidden: true,
      attrs: { role: "listbox", "aria-label": "Members to mention" },
    });
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", this.list.id);
    input.setAttribute("autocomplete", "off");
    input.addEventListener("input", () => this.refresh());
    input.addEventListener("click", () => this.refresh());
    input.addEventListener("keyup", (event) => {
      if (event.key === "ArrowLeft" || event.key === "ArrowRight" || event.key === "Home" || event.key === "End") this.refresh();
    });
    input.addEventListener("blur", () => this.close());
    // Picking with the pointer keeps the focus in the message box.
    this.list.addEventListener("mousedown", (event) => event.preventDefault());
    this.el = this.list;
  }

  get open() {
    return !this.list.hidden;
  }

  /** Look at the text before the caret: offer the members matching an `@word` there. */
  refresh() {
    const caret = this.input.selectionStart;
    if (caret !== this.input.selectionEnd) {
      this.close();
      return;
    }
    const match = TOKEN.exec(this.input.value.slice(0, caret));
    if (!match) {
      this.dismissed = -1;
      this.close();
      return;
    }
    const start = caret - match[1].length - 1;
    if (start === this.dismissed) return;
    this.dismissed = -1;
    const query = match[1].toLowerCase();
    const found = this.candidates().filter((m) => matches(m, query)).slice(0, SHOWN);
    if (!found.length) {
      this.close();
      return;
    }
    const before = this.active >= 0 ? this.matches[this.active] : null;
    this.start = start;
    this.matches = found;
    const keep = before ? found.findIndex((m) => m.id === before.id) : -1;
    this.render(keep >= 0 ? keep : 0);
  }

  render(active) {
    this.list.replaceChildren(...this.matches.map((m, i) => h("li", {
      id: `${this.list.id}-${i}`, class: "mention-option",
      attrs: { role: "option", "aria-selected": "false" },
      on: { click: () => this.pick(i) },
    }, h("span", { class: "mention-name", text: m.display_name || m.username }),
    " ",
    h("span", { class: "muted small", text: `@${m.username}` }))));
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.setActive(active);
  }

  setActive(index) {
    const options = this.list.children;
    if (this.active >= 0 && options[this.active]) options[this.active].setAttribute("aria-selected", "false");
    this.active = index;
    const option = options[index];
    if (!option) return;
    option.setAttribute("aria-selected", "true");
    this.input.setAttribute("aria-activedescendant", option.id);
    option.scrollIntoView({ block: "nearest" });
  }

  close() {
    if (!this.open && this.active < 0) return;
    this.list.hidden = true;
    this.list.replaceChildren();
    this.matches = [];
    this.active = -1;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  /** A key in the message box; returns true when it was the list's (the composer leaves it alone). */
  onKey(event) {
    if (!this.open || event.isComposing) return false;
    const n = this.matches.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      this.setActive((this.active + (event.key === "ArrowDown" ? 1 : -1) + n) % n);
    } else if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
      this.pick(this.active);
    } else if (event.key === "Escape") {
      this.dismissed = this.start;
      this.close();
    } else {
      return false;
    }
    event.preventDefault();
    event.stopPropagation();
    return true;
  }

  /** Put `@username ` in place of the `@` and what was typed after it. */
  pick(index) {
    const member = this.matches[index];
    if (!member) return;
    const field = this.input;
    const caret = field.selectionStart;
    const insert = `@${member.username} `;
    field.focus();
    field.setSelectionRange(this.start, caret);
    // As typing would: the edit joins the field's undo history.
    if (!document.execCommand || !document.execCommand("insertText", false, insert)) {
      field.setRangeText(insert, this.start, caret, "end");
      field.dispatchEvent(new Event("input", { bubbles: true }));
    }
    this.close();
  }
}

/** Whether a member matches what was typed after `@`: the start of the username or of a word of the name. */
function matches(member, query) {
  if (!query) return true;
  if (member.username.toLowerCase().startsWith(query)) return true;
  const name = (member.display_name || "").toLowerCase();
  return name.split(/\s+/).some((word) => word.startsWith(query));
}
