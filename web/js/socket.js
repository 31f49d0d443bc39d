/** The one WebSocket of a tab: first-frame auth, jittered backoff, subscribe/resume, send queue. */

const BASE_DELAY = 500;
const MAX_DELAY = 30000;
const HANDSHAKE_TIMEOUT = 10000;
const RETRYABLE_SEND_CODES = new Set(["rate_limited", "unavailable"]);

/** `ws:` or `wss:` to match the page, same host, path /ws. */
export function socketUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}

/**
 * Events (CustomEvent, data in `detail`):
 *  - `state`    {state: "connecting"|"live"|"reconnecting"|"offline"|"closed", retryAt?}
 *  - `ready`    {user}
 *  - `frame`    any server frame other than ready/sent
 *  - `sent`     the `sent` frame (the send left the outbox)
 *  - `sendfailed` {client_id, chat, code, message} (refused for good)
 *  - `authfailed` the server closed with 4001
 */
export class ChatSocket extends EventTarget {
  constructor(getToken) {
    super();
    this.getToken = getToken;
    this.ws = null;
    this.state = "closed";
    this.retryAt = 0;
    this.attempt = 0;
    this.timer = null;
    this.handshakeTimer = null;
    this.stopped = true;
    /** chat uri -> function returning the `after` to resume from (number or null) */
    this.subscriptions = new Map();
    /** chat uri -> number of `unsubscribed` replies we asked for on this connection */
    this.leaving = new Map();
    /** client_id -> {chat, message, client_id}; kept until `sent` or a final refusal */
    this.outbox = new Map();
    this.onOnline = () => this.reconnectNow();
    // The browser says the network is gone: say so at once, and drop the socket (it would
    // otherwise look live until a ping times out); "online" connects again.
    this.onOffline = () => this.goOffline();
  }

  get live() {
    return this.state === "live";
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.connect();
  }

  /** Close for good (sign out). Pending sends are dropped. */
  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    clearTimeout(this.timer);
    clearTimeout(this.handshakeTimer);
    this.outbox.clear();
    this.subscriptions.clear();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "bye");
    }
    this.setState("closed");
  }

  goOffline() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    clearTimeout(this.handshakeTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "offline");
    }
    this.setState("offline");
  }

  /** Skip the rest of the backoff wait and connect now. */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    if (navigator.onLine === false) {
      this.setState("offline");
      return;
    }
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.handshakeTimer = setTimeout(() => ws.close(4000, "handshake timeout"), HANDSHAKE_TIMEOUT);
    ws.addEventListener("open", () => {
      this.raw({ type: "auth", token: this.getToken() });
    });
    ws.addEventListener("message", (event) => {
      if (this.ws === ws) this.receive(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.handshakeTimer);
      if (this.stopped) return;
      if (event.code === 4001) this.dispatch("authfailed", { code: event.code });
      if (!this.stopped) this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    if (this.stopped) return;
    if (navigator.onLine === false) {
      this.setState("offline");
      return;
    }
    // Full jitter: a uniformly random wait between 0 and the capped exponential delay.
    const cap = Math.min(MAX_DELAY, BASE_DELAY * 2 ** this.attempt);
    const delay = Math.round(Math.random() * cap);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState("reconnecting");
    this.timer = setTimeout(() => this.connect(), delay);
  }

  receive(data) {
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    if (!frame || typeof frame !== "object") return;
    switch (frame.type) {
      case "ready":
        clearTimeout(this.handshakeTimer);
        this.attempt = 0;
        this.setState("live");
        this.dispatch("ready", frame);
        this.resume();
        break;
      case "sent":
        this.outbox.delete(frame.client_id);
        this.dispatch("sent", frame);
        break;
      case "unsubscribed": {
        // Our own unsubscribe's reply is swallowed; an unasked one (we left the chat
        // elsewhere) is passed on.
        const asked = this.leaving.get(frame.chat) || 0;
        if (asked > 0) {
          this.leaving.set(frame.chat, asked - 1);
          return;
        }
        this.dispatch("frame", frame);
        break;
      }
      case "error":
        if (frame.client_id && this.outbox.has(frame.client_id)) {
          this.sendRefused(frame);
          return;
        }
        this.dispatch("frame", frame);
        break;
      default:
        this.dispatch("frame", frame);
    }
  }

  sendRefused(frame) {
    const entry = this.outbox.get(frame.client_id);
    if (RETRYABLE_SEND_CODES.has(frame.code)) {
      // Keep it; try again shortly with the same client_id (the server dedupes).
      entry.retries = (entry.retries || 0) + 1;
      const wait = Math.min(10000, 1000 * entry.retries) * (0.5 + Math.random() / 2);
      setTimeout(() => {
        if (this.outbox.get(frame.client_id) === entry && this.live) this.raw(sendFrame(entry));
      }, wait);
      return;
    }
    this.outbox.delete(frame.client_id);
    this.dispatch("sendfailed", { ...frame, chat: frame.chat || entry.chat });
  }

  /** After `ready`: subscribe again where we left off, then re-send unconfirmed messages. */
  resume() {
    this.leaving.clear();
    for (const [chat, after] of this.subscriptions) this.raw(subscribeFrame(chat, after));
    for (const entry of this.outbox.values()) this.raw(sendFrame(entry));
  }

  /** Follow `chat`; `after()` gives the last seq already shown (null = live only). */
  subscribe(chat, after) {
    this.subscriptions.set(chat, after);
    if (this.live) this.raw(subscribeFrame(chat, after));
  }

  unsubscribe(chat) {
    if (!this.subscriptions.delete(chat)) return;
    if (this.live) {
      this.leaving.set(chat, (this.leaving.get(chat) || 0) + 1);
      this.raw({ type: "unsubscribe", chat });
    }
  }

  /** Queue a message; it is (re)sent until `sent` arrives, always with the same client_id. */
  sendMessage(chat, message, clientId, replyTo = null) {
    const entry = { chat, message, client_id: clientId, reply_to: replyTo };
    this.outbox.set(clientId, entry);
    if (this.live) this.raw(sendFrame(entry));
  }

  /** Forget a queued send (the user discarded it). */
  discard(clientId) {
    this.outbox.delete(clientId);
  }

  typing(chat) {
    if (this.live) this.raw({ type: "typing", chat });
  }

  /** Tell the server what the reader has seen in `chat`; false when not connected. */
  read(chat, seq) {
    if (!this.live) return false;
    this.raw({ type: "read", chat, seq });
    return true;
  }

  /** Whether `chat` is followed (subscribed, or will be on the next connection). */
  follows(chat) {
    return this.subscriptions.has(chat);
  }

  raw(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  setState(state) {
    this.state = state;
    this.dispatch("state", { state, retryAt: this.retryAt });
  }

  dispatch(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function subscribeFrame(chat, after) {
  const value = typeof after === "function" ? after() : after;
  return { type: "subscribe", chat, after: value ?? null };
}

function sendFrame(entry) {
  const frame = { type: "send", chat: entry.chat, message: entry.message, client_id: entry.client_id };
  if (entry.reply_to) frame.reply_to = entry.reply_to;
  return frame;
}
