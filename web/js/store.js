/** Client state: each chat's messages kept by seq (deduped, ordered) and the sends still pending. */

/** One chat's timeline: confirmed messages ascending by seq, plus pending sends in send order. */
export class Timeline {
  constructor(uri) {
    this.uri = uri;
    /** @type {Array<object>} confirmed messages, ascending by seq, no duplicates */
    this.items = [];
    this.bySeq = new Map();
    /** client_id -> {client_id, message, user, created_at, status, seq?, error?} */
    this.pending = new Map();
    this.loaded = false;
    this.hasOlder = false;
  }

  get firstSeq() {
    return this.items.length ? this.items[0].seq : null;
  }

  get maxSeq() {
    return this.items.length ? this.items[this.items.length - 1].seq : null;
  }

  /**
   * The seq to resume from: the end of the gap-free run that starts at the oldest loaded
   * message; null if history was never loaded, 0 if it was and the chat is empty.
   */
  get lastSeq() {
    if (!this.loaded) return null;
    if (!this.items.length) return 0;
    let seq = this.items[0].seq;
    for (let i = 1; i < this.items.length && this.items[i].seq === seq + 1; i += 1) seq += 1;
    return seq;
  }

  /** True when some message above lastSeq arrived before one of its predecessors. */
  get hasGap() {
    return this.items.length > 0 && this.lastSeq !== this.maxSeq;
  }

  has(seq) {
    return this.bySeq.has(seq);
  }

  /**
   * Insert a confirmed message. Returns `{added, index, pending}`: `added` false for a
   * duplicate; `pending` is the pending entry it settles (matched by client_id), if any.
   */
  add(message) {
    let pending = null;
    if (message.client_id && this.pending.has(message.client_id)) {
      pending = this.pending.get(message.client_id);
      this.pending.delete(message.client_id);
    }
    if (this.bySeq.has(message.seq)) return { added: false, index: -1, pending };
    let index = this.items.length;
    while (index > 0 && this.items[index - 1].seq > message.seq) index -= 1;
    this.items.splice(index, 0, message);
    this.bySeq.set(message.seq, message);
    return { added: true, index, pending };
  }

  /** Index of the first confirmed message with a seq above `seq` (items.length if none). */
  indexAfter(seq) {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid].seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  addPending(entry) {
    this.pending.set(entry.client_id, { status: "pending", ...entry });
    return this.pending.get(entry.client_id);
  }

  /** `sent` arrived: the message is stored with `seq`; the echo may still be on its way. */
  confirm(clientId, seq, id) {
    const entry = this.pending.get(clientId);
    if (!entry) return null;
    if (this.bySeq.has(seq)) {
      this.pending.delete(clientId);
      return { ...entry, status: "settled" };
    }
    Object.assign(entry, { status: "sent", seq, id });
    return entry;
  }

  fail(clientId, error) {
    const entry = this.pending.get(clientId);
    if (entry) Object.assign(entry, { status: "failed", error });
    return entry;
  }

  dropPending(clientId) {
    this.pending.delete(clientId);
  }

  /** Forget confirmed history (keep pending sends); used when the cache is too stale. */
  reset() {
    this.items = [];
    this.bySeq.clear();
    this.loaded = false;
    this.hasOlder = false;
  }
}

/** All timelines of the signed-in user, created on demand. */
export class Store {
  constructor() {
    this.timelines = new Map();
  }

  timeline(uri) {
    let t = this.timelines.get(uri);
    if (!t) {
      t = new Timeline(uri);
      this.timelines.set(uri, t);
    }
    return t;
  }

  peek(uri) {
    return this.timelines.get(uri) || null;
  }

  /** Find the chat a pending client_id belongs to. */
  findPending(clientId) {
    for (const t of this.timelines.values()) if (t.pending.has(clientId)) return t;
    return null;
  }
}
