/** Client state: each chat's timeline (messages and line events by seq, applied in seq order) and pending sends. */
import { CHAT_KINDS, LINE_KINDS, MESSAGE_KINDS, applyToMessage, normalizeMessage } from "/js/events.js";

const ORPHANS = 200;

/**
 * One chat's timeline. `items` holds messages and line events (join, leave, ...) ascending by
 * seq. Socket frames go through `receive`, which applies the chat's events strictly in seq
 * order from `streamSeq` (the resume point): a frame past a hole waits in `held` until the
 * hole is filled (from the socket, or `GET .../events`).
 */
export class Timeline {
  constructor(uri) {
    this.uri = uri;
    /** @type {Array<object>} messages (kind "message") and lines, ascending by seq */
    this.items = [];
    this.bySeq = new Map();
    /** Reply targets older than the loaded history: seq -> message (or null while asked). */
    this.quoted = new Map();
    /** client_id -> {client_id, message, reply_to, user, created_at, status, seq?, error?} */
    this.pending = new Map();
    /** seq -> frame that arrived past a hole */
    this.held = new Map();
    /** Recent events about messages not loaded (yet): an older page asked for meanwhile gets them. */
    this.orphans = [];
    this.loaded = false;
    this.hasOlder = false;
    this.streamSeq = null;
  }

  /** The seq to resume from (every event up to it is applied); null before history is loaded. */
  get resumeSeq() {
    return this.loaded ? this.streamSeq : null;
  }

  get firstSeq() {
    return this.items.length ? this.items[0].seq : null;
  }

  /** The newest seq applied: what the reader has seen when looking at the end. */
  get maxSeq() {
    const last = this.items.length ? this.items[this.items.length - 1].seq : 0;
    return Math.max(this.streamSeq || 0, last) || null;
  }

  get hasGap() {
    return this.held.size > 0;
  }

  has(seq) {
    return this.bySeq.has(seq);
  }

  /** The message with `seq`, loaded or quoted, or undefined. */
  message(seq) {
    const item = this.bySeq.get(seq);
    if (item && item.kind === "message") return item;
    return this.quoted.get(seq) || undefined;
  }

  /**
   * Take the newest page of history (GET messages, their state as of at least `asOf`).
   * The stream resumes before the page, or from the start when there is nothing older,
   * so the line events among those messages come too.
   */
  load(page, asOf) {
    this.reset();
    for (const raw of page.messages) this.insert({ ...normalizeMessage(raw), asOf });
    this.hasOlder = Boolean(page.has_more);
    this.streamSeq = this.hasOlder && this.items.length ? this.items[0].seq - 1 : 0;
    this.loaded = true;
  }

  /** Older messages and the line events among them (their state is as of at least `asOf`). */
  addOlder(messages, events, asOf) {
    const added = [];
    for (const raw of messages) {
      if (this.bySeq.has(raw.seq)) continue;
      const message = { ...normalizeMessage(raw), asOf };
      this.insert(message);
      added.push(message);
    }
    for (const event of events) {
      if (!LINE_KINDS.has(event.kind) || this.bySeq.has(event.seq)) continue;
      if (this.firstSeq !== null && event.seq > (this.streamSeq ?? 0)) continue;
      const line = { ...event };
      this.insert(line);
      added.push(line);
    }
    // Events about these messages that came while the page was on its way.
    for (const event of this.orphans) {
      const target = this.bySeq.get(event.target);
      if (target && target.kind === "message" && event.seq > (target.asOf || 0)) {
        target.asOf = event.seq;
        applyToMessage(target, event);
      }
    }
    added.sort((a, b) => a.seq - b.seq);
    return added;
  }

  /**
   * A socket frame (`message` or `event`) or an event from an HTTP reply. Returns
   * `{changes, settled}`: `changes` lists what happened, in order (`{added: item}`,
   * `{updated: seq}`, `{event}` for chat-wide events: rename, settings, role, remove); `settled`
   * the pending sends its messages confirmed.
   */
  receive(frame) {
    const out = { changes: [], settled: [] };
    if (!this.loaded || typeof frame.seq !== "number" || frame.seq <= this.streamSeq) {
      if (frame.type === "message" || frame.kind === "message") this.settle(frame, out);
      return out;
    }
    if (frame.seq > this.streamSeq + 1) {
      this.held.set(frame.seq, frame);
      return out;
    }
    this.applyOne(frame, out);
    this.streamSeq = frame.seq;
    while (this.held.has(this.streamSeq + 1)) {
      const next = this.held.get(this.streamSeq + 1);
      this.held.delete(this.streamSeq + 1);
      this.applyOne(next, out);
      this.streamSeq = next.seq;
    }
    for (const seq of this.held.keys()) if (seq <= this.streamSeq) this.held.delete(seq);
    return out;
  }

  applyOne(frame, out) {
    if (frame.type === "message" || frame.kind === "message") {
      this.settle(frame, out);
      if (this.bySeq.has(frame.seq)) return;
      const message = { ...normalizeMessage(frame), asOf: frame.seq };
      this.insert(message);
      out.changes.push({ added: message });
      return;
    }
    const { type: _type, ...event } = frame;
    if (MESSAGE_KINDS.has(event.kind)) {
      const target = this.message(event.target);
      if (!target) {
        this.orphans.push(event);
        if (this.orphans.length > ORPHANS) this.orphans.shift();
        return;
      }
      // A message loaded over HTTP already shows every event up to its `asOf`.
      if (event.seq <= (target.asOf || 0)) return;
      target.asOf = event.seq;
      if (applyToMessage(target, event)) out.changes.push({ updated: event.target });
    } else if (LINE_KINDS.has(event.kind)) {
      if (!this.bySeq.has(event.seq)) {
        this.insert(event);
        out.changes.push({ added: event });
      }
      if (CHAT_KINDS.has(event.kind)) out.changes.push({ event });
    } else {
      out.changes.push({ event });
    }
  }

  /** A confirmed message settles the pending send with its client_id (sent by this tab). */
  settle(frame, out) {
    if (frame.client_id && this.pending.has(frame.client_id)) {
      out.settled.push(this.pending.get(frame.client_id));
      this.pending.delete(frame.client_id);
    }
  }

  insert(item) {
    let index = this.items.length;
    while (index > 0 && this.items[index - 1].seq > item.seq) index -= 1;
    this.items.splice(index, 0, item);
    this.bySeq.set(item.seq, item);
  }

  /** Index of the first item with a seq above `seq` (items.length if none). */
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

  /** Whether every message after `seq` is loaded (so unread can be counted here). */
  covers(seq) {
    return this.loaded && (!this.hasOlder || (this.firstSeq !== null && this.firstSeq <= seq + 1));
  }

  /** Messages after `seq` by others, not deleted: the unread count (see `covers`). */
  countAfter(seq, meId) {
    let n = 0;
    for (let i = this.indexAfter(seq); i < this.items.length; i += 1) {
      const item = this.items[i];
      if (item.kind === "message" && !item.deleted && item.user.id !== meId) n += 1;
    }
    return n;
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

  /** Forget history (keep pending sends); used when the cache is too stale or out of step. */
  reset() {
    this.items = [];
    this.bySeq.clear();
    this.held.clear();
    this.orphans = [];
    this.loaded = false;
    this.hasOlder = false;
    this.streamSeq = null;
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
