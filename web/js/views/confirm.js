/** A modal yes/no question (<dialog>), e.g. before deleting a message; the safe answer has the focus. */
import { h, labelled } from "/js/dom.js";

/**
 * Resolves to true when the user confirms, false on Cancel or Esc. With `typed` ({label,
 * hint, accepts(value) -> bool}) the user must type a word first (e.g. the chat's name):
 * the confirm button stays disabled until `accepts` agrees, and the field has the focus.
 */
export function confirmDialog({ title, text, confirmLabel = "OK", danger = false, typed = null }) {
  return new Promise((resolve) => {
    let answer = false;
    const headingId = `confirm-${Math.random().toString(36).slice(2)}`;
    const cancel = h("button", { type: "button", class: "ghost", text: "Cancel" });
    const ok = h("button", { type: "submit", class: danger ? "danger" : "primary", text: confirmLabel });
    const field = typed ? h("input", { type: "text", autocomplete: "off", spellcheck: false }) : null;
    const form = h("form", { method: "dialog", noValidate: true },
      h("p", { class: "dialog-text", text }),
      field ? labelled(typed.label, field, typed.hint).wrap : null,
      h("div", { class: "actions" }, cancel, ok));
    const dialog = h("dialog", { class: "dialog", attrs: { "aria-labelledby": headingId } },
      h("h2", { id: headingId, text: title }), form);
    const accepted = () => !field || typed.accepts(field.value);
    if (field) {
      ok.disabled = true;
      field.addEventListener("input", () => { ok.disabled = !accepted(); });
    }
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!accepted()) return;
      answer = true;
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    (field || cancel).focus();
  });
}
