/** Read marks sent to the server as messages are seen: at most one `read` frame a second per chat. */

const EVERY_MS = 1000;

export class ReadSender {
  /** @param {{read: (chat: string, seq: number) => boolean}} socket */
  constructor(socket) {
    this.socket = socket;
    /** uri -> {sent, want, at, timer} */
    this.chats = new Map();
  }

  entry(uri) {
    let e = this.chats.get(uri);
    if (!e) {
      e = { sent: 0, want: 0, at: 0, timer: null };
      this.chats.set(uri, e);
    }
    return e;
  }

  /** The server holds `seq` as read already (GET /api/chats, or a `read` frame): never send less. */
  known(uri, seq) {
    const e = this.entry(uri);
    e.sent = Math.max(e.sent, seq || 0);
  }

  /** The reader has seen `uri` up to `seq`: send it now, or when the second is up. */
  see(uri, seq) {
    const e = this.entry(uri);
    if (!seq || seq <= e.sent || seq <= e.want) return;
    e.want = seq;
    if (e.timer) return;
    const wait = e.at + EVERY_MS - Date.now();
    if (wait <= 0) this.flush(uri);
    else e.timer = setTimeout(() => this.flush(uri), wait);
  }

  flush(uri) {
    const e = this.entry(uri);
    clearTimeout(e.timer);
    e.timer = null;
    if (e.want <= e.sent) return;
    if (this.socket.read(uri, e.want)) {
      e.sent = e.want;
      e.at = Date.now();
    }
    // Not connected: `resend` runs on the next `ready`.
  }

  /** After (re)connecting: send what could not be sent. */
  resend() {
    for (const [uri, e] of this.chats) if (e.want > e.sent && !e.timer) this.flush(uri);
  }

  stop() {
    for (const e of this.chats.values()) clearTimeout(e.timer);
    this.chats.clear();
  }
}
