/** Who is online in each followed chat (the `subscribed` frame's list, then `presence` frames), and "last seen" words. */

/**
 * Presence per chat: user id -> {online, lastSeen}. The socket is the authority once a chat's
 * `subscribed` frame came (it lists everyone online then; `presence` frames follow each
 * change, in order); `GET /api/chats/{uri}` adds `last_seen`, and says who is online only
 * for a chat the socket has not told about yet (its reply may be older than a frame).
 * Dispatches `change` with `detail: {chat}`.
 */
export class Presence extends EventTarget {
  constructor(meId) {
    super();
    this.meId = meId;
    /** uri -> {heard: bool, users: Map<id, {online, lastSeen}>} */
    this.chats = new Map();
  }

  table(uri) {
    let t = this.chats.get(uri);
    if (!t) {
      t = { heard: false, users: new Map() };
      this.chats.set(uri, t);
    }
    return t;
  }

  entry(uri, id) {
    const users = this.table(uri).users;
    let e = users.get(id);
    if (!e) {
      e = { online: false, lastSeen: null };
      users.set(id, e);
    }
    return e;
  }

  /** `subscribed`: exactly `ids` are online in `uri` now. */
  snapshot(uri, ids) {
    const t = this.table(uri);
    const online = new Set(ids || []);
    const now = new Date().toISOString();
    for (const [id, e] of t.users) {
      if (e.online && !online.has(id)) {
        e.online = false;
        e.lastSeen = now;
      }
    }
    for (const id of online) this.entry(uri, id).online = true;
    t.heard = true;
    this.changed(uri);
  }

  /** A `presence` frame: `userId` came online in `uri`, or went offline (seen just now). */
  set(uri, userId, online) {
    const e = this.entry(uri, userId);
    if (e.online === online) return;
    e.online = online;
    if (!online) e.lastSeen = new Date().toISOString();
    this.changed(uri);
  }

  /** Members from `GET /api/chats/{uri}`: their `last_seen` (and `online`, if the socket has not said). */
  members(uri, members) {
    const t = this.table(uri);
    for (const m of members || []) {
      const e = this.entry(uri, m.id);
      if (!t.heard && typeof m.online === "boolean") e.online = m.online;
      if (m.last_seen && (!e.lastSeen || Date.parse(m.last_seen) > Date.parse(e.lastSeen))) e.lastSeen = m.last_seen;
    }
    this.changed(uri);
  }

  /** `{online, lastSeen}` of a user in a chat; I am online wherever I look. */
  of(uri, userId) {
    if (userId === this.meId) return { online: true, lastSeen: null };
    const e = this.chats.get(uri)?.users.get(userId);
    return e ? { online: e.online, lastSeen: e.lastSeen } : { online: false, lastSeen: null };
  }

  /** How many of `ids` (a chat's members) are online in it, me included. */
  count(uri, ids) {
    return ids.filter((id) => this.of(uri, id).online).length;
  }

  /** The chat is no longer followed (left, removed, deleted, or the socket is gone). */
  forget(uri) {
    if (this.chats.delete(uri)) this.changed(uri);
  }

  changed(uri) {
    this.dispatchEvent(new CustomEvent("change", { detail: { chat: uri } }));
  }
}

/**
 * A member's presence in words: "online", "last seen 5 min ago", "last seen yesterday at
 * 14:05"... (`short`: "seen 5 min ago", "seen yesterday"); "offline" when never seen.
 */
export function seenText({ online, lastSeen }, { short = false } = {}) {
  if (online) return "online";
  const when = lastSeen ? new Date(lastSeen) : null;
  if (!when || Number.isNaN(when.getTime())) return "offline";
  const prefix = short ? "seen" : "last seen";
  const minutes = Math.floor((Date.now() - when.getTime()) / 60000);
  if (minutes < 1) return `${prefix} just now`;
  if (minutes < 60) return `${prefix} ${minutes} min ago`;
  const now = new Date();
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  const time = when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (when.toDateString() === now.toDateString()) return short ? `${prefix} ${time}` : `${prefix} today at ${time}`;
  if (when.toDateString() === yesterday.toDateString()) return short ? `${prefix} yesterday` : `${prefix} yesterday at ${time}`;
  return `${prefix} ${when.toLocaleDateString(undefined, { day: "numeric", month: "short" })}`;
}
