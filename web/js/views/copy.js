/** Copy a link to the clipboard, or select it in its read-only field for Ctrl+C where the clipboard is not allowed. */

/**
 * Copy `text`; `say(words)` reports how it went. Without the clipboard API (not a secure
 * context, or refused) the read-only `field` gets the focus with its text selected.
 * Resolves to whether the text reached the clipboard.
 */
export async function copyText(text, field, say) {
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    say("Link copied");
    return true;
  } catch {
    if (field) {
      field.focus();
      field.select();
    }
    say("Press Ctrl+C to copy the selected link");
    return false;
  }
}
