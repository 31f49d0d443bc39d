/** Who is signed in: the token (sessionStorage, per tab) and per-user "last seen seq" (localStorage). */

const TOKEN_KEY = "chatire.token";

export const session = {
  /** @type {{id:number, username:string, display_name:string} | null} */
  user: null,

  get token() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
  },
  set token(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage disabled: the session lasts as long as the page */ }
  },
  clear() {
    this.token = null;
    this.user = null;
  },
};

/** The last seq this user has seen in each chat, kept across tabs and reloads. */
export class SeenMarks {
  constructor(userId) {
    this.key = `chatire.seen.${userId}`;
    this.marks = {};
    try { this.marks = JSON.parse(localStorage.getItem(this.key) || "{}") || {}; } catch { this.marks = {}; }
  }

  get(uri) {
    return Number(this.marks[uri]) || 0;
  }

  /** Raise the mark for `uri` to `seq`; returns true if it moved. */
  see(uri, seq) {
    if (!seq || seq <= this.get(uri)) return false;
    // Another tab may have moved it further; merge before writing.
    try { Object.assign(this.marks, JSON.parse(localStorage.getItem(this.key) || "{}")); } catch { /* ignore */ }
    if (seq <= this.get(uri)) return false;
    this.marks[uri] = seq;
    try { localStorage.setItem(this.key, JSON.stringify(this.marks)); } catch { /* quota: keep in memory */ }
    return true;
  }

  /** Re-read marks written by other tabs. */
  reload() {
    try { this.marks = JSON.parse(localStorage.getItem(this.key) || "{}") || {}; } catch { /* keep */ }
  }
}
