/** chatire browser UI entry point: read the daemon's limits, restore the session, then show sign-in or the app. */
import { api, configure } from "/js/api.js";
import { loadConfig } from "/js/config.js";
import { h, replaceChildren } from "/js/dom.js";
import { current, navigate } from "/js/router.js";
import { session } from "/js/session.js";
import { renderAuth } from "/js/views/auth.js";
import { startShell } from "/js/shell.js";

const root = document.getElementById("app");
let shell = null;

configure({
  getToken: () => session.token,
  unauthenticated: () => signedOut("Your session has ended. Please sign in again."),
});

function showAuth(notice = "") {
  root.removeAttribute("aria-busy");
  renderAuth(root, {
    invited: current().name === "chat" || current().name === "invite",
    notice,
    onSignedIn(token, user) {
      session.token = token;
      enter(user);
    },
  });
}

function enter(user) {
  session.user = user;
  root.removeAttribute("aria-busy");
  shell = startShell(root, user, {
    onSignOut: () => signedOut("You are signed out.", { home: true }),
  });
}

/** Drop the session (once, even if several requests see the 401) and show sign-in. */
function signedOut(notice, { home = false } = {}) {
  if (!shell && !session.token) return;
  shell?.stop();
  shell = null;
  session.clear();
  if (home) navigate("/", { replace: true });
  showAuth(notice);
}

async function boot() {
  try {
    await loadConfig(); // the limits every view applies come from the daemon
    if (!session.token) {
      showAuth();
      return;
    }
    const { user } = await api.me();
    enter(user);
  } catch (err) {
    if (err.code === "unauthenticated") return; // configure() already showed sign-in
    root.removeAttribute("aria-busy");
    replaceChildren(root, h("main", { class: "center empty-state boot" },
      h("p", { class: "form-error", attrs: { role: "alert" }, text: err.message }),
      h("button", { type: "button", class: "primary", text: "Try again", on: { click: () => location.reload() } })));
  }
}

boot();
