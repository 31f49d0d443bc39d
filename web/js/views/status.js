/** Connection status pill: connecting / live / reconnecting in N s / offline, with "Reconnect now". */
import { h, replaceChildren } from "/js/dom.js";

/** Bind the status area `el` to a ChatSocket. Returns a function that stops the countdown. */
export function bindStatus(el, socket) {
  const text = h("span", { class: "conn-text", attrs: { role: "status", "aria-label": "Connection" } });
  const dot = h("span", { class: "dot", attrs: { "aria-hidden": "true" } });
  const retry = h("button", {
    type: "button", class: "link small", text: "Reconnect now", hidden: true,
    on: { click: () => socket.reconnectNow() },
  });
  replaceChildren(el, dot, text, retry);
  let ticker = null;
  let shown = "";

  function setText(value) {
    if (value !== shown) {
      shown = value;
      text.textContent = value;
    }
  }

  function render() {
    const { state } = socket;
    el.dataset.state = state;
    retry.hidden = !(state === "reconnecting" || state === "offline");
    clearInterval(ticker);
    ticker = null;
    if (state === "live") setText("Live");
    else if (state === "connecting") setText("Connecting…");
    else if (state === "offline") setText("Offline");
    else if (state === "closed") setText("Disconnected");
    else if (state === "reconnecting") {
      const tick = () => {
        const seconds = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
        setText(seconds > 0 ? `Reconnecting in ${seconds} s` : "Reconnecting…");
      };
      tick();
      ticker = setInterval(tick, 250);
    }
  }

  socket.addEventListener("state", render);
  render();
  return () => {
    clearInterval(ticker);
    socket.removeEventListener("state", render);
  };
}
