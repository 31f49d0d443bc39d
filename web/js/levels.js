/** Notification levels: my default (GET /api/me/notifications) and each chat's own (GET/PUT /api/chats/{uri}/notifications). */
import { api } from "/js/api.js";

export const LEVELS = ["all", "mentions", "none"];
/** The server's default level until my settings are known. */
const DEFAULT_LEVEL = "mentions";

/**
 * What this tab knows of my levels. A chat's level is asked for once (when the chat opens, or
 * the first time a message there might be worth a desktop notification) and kept; changes
 * made here are kept as the server answers them. Dispatches `change` with
 * `detail: {chat}` (a chat's level) or `detail: {chat: null}` (the default).
 */
export class Levels extends EventTarget {
  constructor() {
    super();
    this.defaultLevel = DEFAULT_LEVEL;
    this.defaultKnown = null; // a promise while (or once) the settings are asked for
    /** uri -> "all" | "mentions" | "none" | null (null: my default) */
    this.chats = new Map();
    this.asking = new Map(); // uri -> promise
  }

  /** Settings from the server (GET or PUT /api/me/notifications): the default level in them. */
  takeSettings(settings) {
    if (settings && LEVELS.includes(settings.level) && settings.level !== this.defaultLevel) {
      this.defaultLevel = settings.level;
      this.changed(null);
    }
  }

  /** Ask for my settings once (for the default level); never throws. */
  loadDefault() {
    if (!this.defaultKnown) {
      this.defaultKnown = api.notifications()
        .then((data) => this.takeSettings(data.notifications))
        .catch(() => { this.defaultKnown = null; }); // asked again next time
    }
    return this.defaultKnown;
  }

  /** The chat's own level ("all", "mentions", "none"), null for my default, undefined if not known yet. */
  own(uri) {
    return this.chats.get(uri);
  }

  /** Ask the server for the chat's own level (once; again after a failure). */
  load(uri) {
    if (this.chats.has(uri)) return Promise.resolve(this.chats.get(uri));
    let asking = this.asking.get(uri);
    if (!asking) {
      asking = api.chatNotifications(uri)
        .then((data) => {
          const level = LEVELS.includes(data.level) ? data.level : null;
          if (!this.chats.has(uri)) this.set(uri, level);
          return this.chats.get(uri);
        })
        .finally(() => this.asking.delete(uri));
      this.asking.set(uri, asking);
    }
    return asking;
  }

  /** Change the chat's own level on the server; throws the ApiError, keeping the old level. */
  async save(uri, level) {
    const data = await api.setChatNotifications(uri, level);
    const saved = data && "level" in data ? data.level : level;
    this.set(uri, LEVELS.includes(saved) ? saved : null);
  }

  set(uri, level) {
    this.chats.set(uri, level);
    this.changed(uri);
  }

  /** The level that applies in the chat (its own, else my default); asks for what is missing. */
  async effective(uri) {
    await this.loadDefault();
    let own;
    try { own = await this.load(uri); } catch { own = null; }
    return own || this.defaultLevel;
  }

  /** The level that applies in the chat as far as known now (no request). */
  effectiveNow(uri) {
    return this.chats.get(uri) || this.defaultLevel;
  }

  /** The chat is gone for me: forget its level. */
  forget(uri) {
    this.chats.delete(uri);
  }

  changed(uri) {
    this.dispatchEvent(new CustomEvent("change", { detail: { chat: uri } }));
  }
}
