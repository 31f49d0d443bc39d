/** Sign-in and sign-up screen: one form at a time, inline errors, no alert(). */
import { h, labelled, replaceChildren } from "/js/dom.js";
import { api, describe } from "/js/api.js";

const USERNAME_RE = /^[A-Za-z0-9_.-]{1,150}$/;

/**
 * Render the auth screen into `root`.
 * @param {HTMLElement} root
 * @param {{invited?: boolean, notice?: string, onSignedIn: (token: string, user: object) => void}} opts
 */
export function renderAuth(root, { invited = false, notice = "", onSignedIn }) {
  let mode = "signin";
  const main = h("main", { class: "auth", attrs: { "aria-labelledby": "auth-title" } });
  root.setAttribute("data-screen", "auth");
  replaceChildren(root, main);

  function draw() {
    const signup = mode === "signup";
    const username = h("input", {
      type: "text", name: "username", autocomplete: "username", required: true,
      autocapitalize: "none", spellcheck: false, maxLength: 150,
    });
    const password = h("input", {
      type: "password", name: "password", required: true, minLength: 8, maxLength: 1024,
      autocomplete: signup ? "new-password" : "current-password",
    });
    const displayName = signup
      ? h("input", { type: "text", name: "display_name", autocomplete: "nickname", maxLength: 150 })
      : null;
    const error = h("p", { class: "form-error", attrs: { role: "alert" } });
    const submit = h("button", { type: "submit", class: "primary", text: signup ? "Sign up" : "Sign in" });
    const form = h("form", { class: "auth-form", noValidate: true },
      labelled("Username", username, signup ? "Letters, digits, “_”, “.” and “-”." : null).wrap,
      labelled("Password", password, signup ? "At least 8 characters." : null).wrap,
      displayName && labelled("Display name", displayName, "Optional: how others see you.").wrap,
      error,
      submit,
    );
    const switcher = h("button", {
      type: "button", class: "link",
      text: signup ? "I already have an account" : "Create an account",
      on: { click: () => { mode = signup ? "signin" : "signup"; draw(); } },
    });

    function fail(message, field) {
      error.textContent = message;
      for (const f of [username, password, displayName]) f?.removeAttribute("aria-invalid");
      if (field) {
        field.setAttribute("aria-invalid", "true");
        field.focus();
      }
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = username.value.trim();
      if (!USERNAME_RE.test(name)) {
        fail(name ? "A username uses only letters, digits, “_”, “.” and “-” (at most 150)." : "Enter your username.", username);
        return;
      }
      if (password.value.length < 8) {
        fail(signup ? "Choose a password of at least 8 characters." : "Enter your password (at least 8 characters).", password);
        return;
      }
      fail("");
      submit.disabled = true;
      form.setAttribute("aria-busy", "true");
      submit.textContent = signup ? "Creating account…" : "Signing in…";
      try {
        if (signup) await api.register(name, password.value, displayName.value.trim() || undefined);
        const { token, user } = await api.signIn(name, password.value);
        onSignedIn(token, user);
      } catch (err) {
        submit.disabled = false;
        form.removeAttribute("aria-busy");
        submit.textContent = signup ? "Sign up" : "Sign in";
        if (err.code === "conflict") fail("That username is taken. Pick another one.", username);
        else if (err.code === "unauthenticated") fail("Wrong username or password.", password);
        else fail(describe(err));
      }
    });

    replaceChildren(main,
      h("div", { class: "auth-card" },
        h("div", { class: "brand" }, h("span", { class: "logo", attrs: { "aria-hidden": "true" } }), "chatire"),
        h("h1", { id: "auth-title", text: signup ? "Create your account" : "Sign in" }),
        invited && h("p", { class: "notice", text: signup
          ? "Create an account to join the chat you were invited to."
          : "Sign in to join the chat you were invited to." }),
        notice && h("p", { class: "notice", text: notice }),
        form,
        h("p", { class: "switch" }, signup ? null : "New here? ", switcher),
      ),
    );
    username.focus();
  }

  draw();
}
