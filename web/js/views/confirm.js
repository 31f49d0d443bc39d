/** A modal yes/no question (<dialog>), e.g. before deleting a message; the safe answer has the focus. */
import { h } from "/js/dom.js";

/** Resolves to true when the user confirms, false on Cancel or Esc. */
export function confirmDialog({ title, text, confirmLabel = "OK", danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    const headingId = `confirm-${Math.random().toString(36).slice(2)}`;
    const cancel = h("button", { type: "button", class: "ghost", text: "Cancel" });
    const ok = h("button", { type: "button", class: danger ? "danger" : "primary", text: confirmLabel });
    const dialog = h("dialog", { class: "dialog", attrs: { "aria-labelledby": headingId } },
      h("h2", { id: headingId, text: title }),
      h("p", { class: "dialog-text", text }),
      h("div", { class: "actions" }, cancel, ok));
    cancel.addEventListener("click", () => dialog.close());
    ok.addEventListener("click", () => {
      answer = true;
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
