/** HTTP API client: JSON in and out, bearer token, errors thrown as ApiError with `code`. */

/** An HTTP error from the server (`{"error": {"code", "message"}}`) or the network. */
export class ApiError extends Error {
  constructor(code, message, status = 0, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

let tokenSource = () => null;
let onUnauthenticated = () => {};

/** Tell the client where the token lives and what to do when the server rejects it. */
export function configure({ getToken, unauthenticated }) {
  if (getToken) tokenSource = getToken;
  if (unauthenticated) onUnauthenticated = unauthenticated;
}

const FALLBACK_CODES = {
  400: "invalid", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
  409: "conflict", 413: "too_large", 429: "rate_limited", 503: "unavailable",
};

/**
 * Call the API. Returns the parsed JSON body (or null for 204).
 * @param {string} method
 * @param {string} path  e.g. "/api/chats"
 * @param {object} [body]
 * @param {{auth?: boolean, signal?: AbortSignal}} [options]
 */
export async function request(method, path, body, { auth = true, signal } = {}) {
  const headers = { Accept: "application/json" };
  const token = auth ? tokenSource() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, signal, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("network", "Cannot reach the server. Check your connection.");
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (response.ok) return data;
  const err = data && data.error ? data.error : {};
  const retry = Number(response.headers.get("Retry-After"));
  const error = new ApiError(
    err.code || FALLBACK_CODES[response.status] || "server_error",
    err.message || `The server answered ${response.status}.`,
    response.status,
    Number.isFinite(retry) && retry > 0 ? retry : null,
  );
  if (error.code === "unauthenticated" && token) onUnauthenticated(error);
  throw error;
}

const enc = encodeURIComponent;

/** The calls of the wire protocol (docs/protocol.md), one function each. */
export const api = {
  config: () => request("GET", "/api/config", undefined, { auth: false }),
  register: (username, password, displayName) =>
    request("POST", "/api/auth/register",
      displayName ? { username, password, display_name: displayName } : { username, password },
      { auth: false }),
  signIn: (username, password) =>
    request("POST", "/api/auth/token", { username, password }, { auth: false }),
  signOut: () => request("DELETE", "/api/auth/token"),
  me: () => request("GET", "/api/me"),
  createChat: (title) => request("POST", "/api/chats", title ? { title } : {}),
  /** One page of my chats, latest activity first: `{chats, next}`; pass `next` as `cursor`. */
  chats: ({ limit, cursor } = {}) => {
    const params = new URLSearchParams();
    if (limit) params.set("limit", limit);
    if (cursor) params.set("cursor", cursor);
    const qs = params.toString();
    return request("GET", `/api/chats${qs ? `?${qs}` : ""}`);
  },
  chat: (uri) => request("GET", `/api/chats/${enc(uri)}`),
  join: (uri) => request("POST", `/api/chats/${enc(uri)}/members`),
  leave: (uri) => request("DELETE", `/api/chats/${enc(uri)}/members/me`),
  post: (uri, message, clientId, replyTo) =>
    request("POST", `/api/chats/${enc(uri)}/messages`,
      replyTo ? { message, client_id: clientId, reply_to: replyTo } : { message, client_id: clientId }),
  /** Change the text of my message: `{event}` (kind edit). */
  edit: (uri, seq, message) => request("PATCH", `/api/chats/${enc(uri)}/messages/${seq}`, { message }),
  /** Erase a message (mine, or any as an admin or the owner): `{event}` (kind delete). */
  deleteMessage: (uri, seq) => request("DELETE", `/api/chats/${enc(uri)}/messages/${seq}`),
  /** Add my reaction: `{event}`, or `{event: null}` if it was there already. */
  react: (uri, seq, emoji) => request("PUT", `/api/chats/${enc(uri)}/messages/${seq}/reactions/${enc(emoji)}`),
  /** Take my reaction back: `{event}`, or `{event: null}` if there was none. */
  unreact: (uri, seq, emoji) => request("DELETE", `/api/chats/${enc(uri)}/messages/${seq}/reactions/${enc(emoji)}`),
  /** The raw timeline after `after`: `{events, has_more}`, ascending. */
  events: (uri, { after = 0, limit } = {}) => {
    const params = new URLSearchParams({ after: String(after) });
    if (limit) params.set("limit", limit);
    return request("GET", `/api/chats/${enc(uri)}/events?${params}`);
  },
  /** Raise my read mark (the socket's `read` frame does the same). */
  markRead: (uri, seq) => request("PUT", `/api/chats/${enc(uri)}/read`, { seq }),
  /** Rename the chat and/or choose how people join (`{title?, join?}`): `{chat}`. Admins and the owner. */
  updateChat: (uri, changes) => request("PATCH", `/api/chats/${enc(uri)}`, changes),
  /** Delete the chat and everything in it (the owner). */
  deleteChat: (uri) => request("DELETE", `/api/chats/${enc(uri)}`),
  /** Put a member out; with `ban`, keep them out. */
  removeMember: (uri, userId, ban = false) =>
    request("DELETE", `/api/chats/${enc(uri)}/members/${enc(String(userId))}${ban ? "?ban=1" : ""}`),
  /** Lift a ban. */
  unban: (uri, userId) => request("DELETE", `/api/chats/${enc(uri)}/bans/${enc(String(userId))}`),
  /** Give a member a role ("admin", "member", or "owner" to hand the chat over): `{member}`. */
  setRole: (uri, userId, role) =>
    request("PUT", `/api/chats/${enc(uri)}/members/${enc(String(userId))}/role`, { role }),
  /** Make an invite: `{invite}`; `expiresIn` seconds and `maxUses` are optional. */
  createInvite: (uri, { expiresIn, maxUses } = {}) => {
    const body = {};
    if (expiresIn) body.expires_in = expiresIn;
    if (maxUses) body.max_uses = maxUses;
    return request("POST", `/api/chats/${enc(uri)}/invites`, body);
  },
  /** The chat's live invites, newest first: `{invites}`. */
  invites: (uri) => request("GET", `/api/chats/${enc(uri)}/invites`),
  revokeInvite: (uri, code) => request("DELETE", `/api/chats/${enc(uri)}/invites/${enc(code)}`),
  /** Where an invite leads: `{chat: {title, kind}, invited_by}`; 404 when it does not work. */
  invite: (code) => request("GET", `/api/invites/${enc(code)}`),
  /** Join through an invite: `{chat}`. */
  useInvite: (code) => request("POST", `/api/invites/${enc(code)}`),
  /** The direct chat with `username` (made on the first ask from either side): `{chat}`. */
  direct: (username) => request("POST", "/api/direct", { username }),
  /** My notification settings: `{notifications: Settings, email_enabled}` (the secret is never sent back). */
  notifications: () => request("GET", "/api/me/notifications"),
  /** Change some of my notification settings (`{level?, delay?, webhook?, email?}`): `{notifications}`. */
  setNotifications: (changes) => request("PUT", "/api/me/notifications", changes),
  /** Send a test through each channel set: `{results: {webhook?, email?}}`; 429 when asked too often. */
  testNotifications: () => request("POST", "/api/me/notifications/test", {}),
  /** My level for one chat: `{level}`, null meaning my default. */
  chatNotifications: (uri) => request("GET", `/api/chats/${enc(uri)}/notifications`),
  /** Set my level for one chat ("all", "mentions", "none", or null for my default): `{level}`. */
  setChatNotifications: (uri, level) => request("PUT", `/api/chats/${enc(uri)}/notifications`, { level }),
  /** `query`: {after?, before?, limit?} */
  messages: (uri, query = {}) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, v);
    const qs = params.toString();
    return request("GET", `/api/chats/${enc(uri)}/messages${qs ? `?${qs}` : ""}`);
  },
};

/** A human sentence for an error, suitable for an inline message. */
export function describe(error) {
  if (!(error instanceof ApiError)) return "Something went wrong. Please try again.";
  if (error.code === "rate_limited") {
    return error.retryAfter
      ? `Too many attempts. Try again in ${Math.ceil(error.retryAfter)} s.`
      : "Too many attempts. Try again in a moment.";
  }
  return error.message;
}
