/** "New chat" dialog: optional title, inline errors. */
import { describe } from "/js/api.js";
import { limits } from "/js/config.js";
import { charCount, h, keepChars, labelled } from "/js/dom.js";

/**
 * Open a modal dialog asking for a title; `create(title)` returns a promise of the chat.
 * Resolves to the created chat, or null when cancelled.
 */
export function openNewChatDialog(create) {
  return new Promise((resolve) => {
    const title = h("input", { type: "text", name: "title", autocomplete: "off" });
    keepChars(title, limits.title_chars);
    const error = h("p", { class: "form-error", attrs: { role: "alert" } });
    const submit = h("button", { type: "submit", class: "primary", text: "Create" });
    const cancel = h("button", { type: "button", class: "ghost", text: "Cancel" });
    const form = h("form", { noValidate: true },
      labelled("Title", title, "Optional. You can share the invite link once it exists.").wrap,
      error,
      h("div", { class: "actions" }, cancel, submit));
    const dialog = h("dialog", { class: "dialog", attrs: { "aria-labelledby": "new-chat-title" } },
      h("h2", { id: "new-chat-title", text: "New chat" }), form);
    let result = null;

    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = title.value.trim();
      if (charCount(value) > limits.title_chars) {
        error.textContent = `A title has at most ${limits.title_chars} characters.`;
        return;
      }
      submit.disabled = true;
      submit.textContent = "Creating…";
      error.textContent = "";
      try {
        result = await create(value);
        dialog.close();
      } catch (err) {
        submit.disabled = false;
        submit.textContent = "Create";
        error.textContent = describe(err);
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    title.focus();
  });
}
