/** The other person of each direct chat: GET /api/chats does not name them, so each is asked for once and kept. */
import { api } from "/js/api.js";

const AT_ONCE = 4;

export class Peers {
  /**
   * @param {object} me
   * @param {{onPeer: (uri: string) => void, onMembers: (uri: string, members: object[]) => void}} handlers
   *   `onPeer` when a chat's other person becomes known; `onMembers` with every members
   *   list fetched here (their presence and last seen are worth keeping).
   */
  constructor(me, { onPeer, onMembers }) {
    this.me = me;
    this.onPeer = onPeer;
    this.onMembers = onMembers;
    this.byUri = new Map();
    this.queue = [];
    this.asked = new Set();
    this.running = 0;
    this.stopped = false;
  }

  /** The other member of the direct chat `uri`, or null while unknown. */
  get(uri) {
    return this.byUri.get(uri) || null;
  }

  set(uri, user) {
    if (!user || user.id === this.me.id) return;
    const known = this.byUri.get(uri);
    if (known && known.id === user.id && known.display_name === user.display_name) return;
    this.byUri.set(uri, { id: user.id, username: user.username, display_name: user.display_name });
    this.onPeer(uri);
  }

  /** The chat's members as GET /api/chats/{uri} lists them: the one who is not me. */
  fromMembers(uri, members) {
    const other = (members || []).find((m) => m.id !== this.me.id);
    if (other) this.set(uri, other);
  }

  /** Ask (a few at a time) for the other person of each direct chat in `chats` not known yet. */
  fill(chats) {
    for (const chat of chats) {
      if (chat.kind !== "direct" || this.byUri.has(chat.uri) || this.asked.has(chat.uri)) continue;
      const last = chat.last_message;
      if (last && last.user && last.user.id !== this.me.id) this.set(chat.uri, last.user); // the name now; presence below
      this.asked.add(chat.uri);
      this.queue.push(chat.uri);
    }
    while (this.running < AT_ONCE && this.queue.length) this.ask(this.queue.shift());
  }

  async ask(uri) {
    this.running += 1;
    try {
      const info = await api.chat(uri);
      if (this.stopped) return;
      this.fromMembers(uri, info.members);
      this.onMembers(uri, info.members);
    } catch {
      this.asked.delete(uri); // asked again with the next list
    } finally {
      this.running -= 1;
      if (!this.stopped && this.queue.length) this.ask(this.queue.shift());
    }
  }

  stop() {
    this.stopped = true;
    this.queue = [];
  }
}
