/** The signed-in app: one socket per tab, the chat list with unread counts, routing to rooms. */
import { api } from "/js/api.js";
import { h, replaceChildren } from "/js/dom.js";
import { current, navigate, onRoute, chatPath } from "/js/router.js";
import { SeenMarks, session } from "/js/session.js";
import { ChatSocket } from "/js/socket.js";
import { Store } from "/js/store.js";
import { attentive, chime, setTitleCount } from "/js/notify.js";
import { ChatRoom } from "/js/room.js";
import { renderLayout } from "/js/views/layout.js";
import { bindStatus } from "/js/views/status.js";
import { ChatListView } from "/js/views/chatlist.js";
import { openNewChatDialog } from "/js/views/newchat.js";

const REFRESH_MS = 15000;
/** Chats asked for at a time; more are loaded as the list scrolls to its end. */
const PAGE = 50;

/**
 * Start the app for `me` inside `root`. `onSignOut()` is called after the user signs out.
 * Returns `{stop}` to tear everything down.
 */
export function startShell(root, me, { onSignOut }) {
  const layout = renderLayout(root, me);
  const store = new Store();
  const seen = new SeenMarks(me.id);
  const socket = new ChatSocket(() => session.token);
  const stopStatus = bindStatus(layout.status, socket);
  const list = new ChatListView(layout.sidebar, { onNewChat: newChat, onMore: loadMore, me });
  let chats = [];
  let next = null; // cursor of the first page not loaded yet
  let deeper = false; // whether pages past the first were loaded by scrolling
  let loadingMore = false;
  let listLoaded = false;
  let lastUnread = new Map();
  let room = null;
  let stopped = false;
  let listReady;
  const firstList = new Promise((resolve) => { listReady = resolve; });

  const ctx = {
    me, socket, store, seen,
    onActivity: (uri, seq, message) => noteActivity(uri, seq, message),
    onJoined: () => refreshChats(),
    onSeen: () => renderList(),
    /** Whether `uri` is among my chats: true/false, or null if the list is not known yet. */
    isMember: async (uri) => {
      await Promise.race([firstList, new Promise((r) => { setTimeout(r, 5000); })]);
      if (!listLoaded) return null;
      return chats.some((c) => c.uri === uri) || (next ? null : false);
    },
  };

  function unread(chat) {
    const t = store.peek(chat.uri);
    const last = Math.max(chat.last_seq, (t && t.maxSeq) || 0);
    if (room && room.uri === chat.uri && room.ready && attentive()) return 0;
    return Math.max(0, last - seen.get(chat.uri));
  }

  function renderList() {
    if (!listLoaded) return;
    list.update(chats, { openUri: room ? room.uri : null, unread, more: Boolean(next) });
    setTitleCount(chats.reduce((sum, c) => sum + unread(c), 0));
  }

  async function refreshChats() {
    try {
      const data = await api.chats({ limit: PAGE });
      if (stopped) return;
      const fresh = new Set(data.chats.map((c) => c.uri));
      if (deeper && data.next) {
        // Pages loaded by scrolling stay: the first page is refreshed, the rest kept.
        chats = data.chats.concat(chats.filter((c) => !fresh.has(c.uri)));
      } else {
        chats = data.chats;
        next = data.next;
        deeper = false;
      }
      seen.reload();
      let grew = false;
      const now = new Map();
      for (const c of chats) {
        const n = unread(c);
        now.set(c.uri, n);
        if (listLoaded && n > (lastUnread.get(c.uri) || 0) && !(room && room.uri === c.uri)) grew = true;
      }
      lastUnread = now;
      listLoaded = true;
      listReady();
      renderList();
      if (grew) chime();
    } catch (err) {
      if (!listLoaded && !stopped && err.code !== "unauthenticated") {
        list.nav.removeAttribute("aria-busy");
        replaceChildren(list.nav, h("p", { class: "form-error", text: "Could not load your chats. Retrying…" }));
      }
    }
  }

  /** The list scrolled to its end: load the next page of chats, if there is one. */
  async function loadMore() {
    if (!next || loadingMore || stopped) return;
    loadingMore = true;
    try {
      const data = await api.chats({ limit: PAGE, cursor: next });
      if (stopped) return;
      const known = new Set(chats.map((c) => c.uri));
      chats = chats.concat(data.chats.filter((c) => !known.has(c.uri)));
      next = data.next;
      deeper = true;
      for (const c of data.chats) lastUnread.set(c.uri, unread(c));
    } catch {
      // Retried when the sentinel shows again (next scroll or refresh).
    } finally {
      loadingMore = false;
    }
    renderList();
    list.setMore(Boolean(next)); // observed afresh: fires again if the end is still in view
  }

  /** A message (or `subscribed`) in `uri`: bump its last_seq and preview, move it to the top. */
  function noteActivity(uri, seq, message) {
    const index = chats.findIndex((c) => c.uri === uri);
    if (index < 0) {
      refreshChats();
      return;
    }
    const chat = chats[index];
    if (message && message.seq >= chat.last_seq) {
      chat.last_message = { user: message.user, message: message.message, created_at: message.created_at };
    }
    if (seq && seq > chat.last_seq) {
      chat.last_seq = seq;
      chats.splice(index, 1);
      chats.unshift(chat);
      lastUnread.set(uri, unread(chat));
    }
    renderList();
  }

  async function newChat() {
    const chat = await openNewChatDialog(async (title) => (await api.createChat(title)).chat);
    if (!chat) return;
    if (!chats.some((c) => c.uri === chat.uri)) chats.unshift(chat);
    navigate(chatPath(chat.uri));
    refreshChats();
  }

  function showRoute(route) {
    if (route.name === "chat") {
      if (room && room.uri === route.uri && !room.closed) return;
      room?.close();
      room = new ChatRoom(route.uri, ctx);
      replaceChildren(layout.main, room.view.el);
      root.dataset.view = "chat";
      room.open();
    } else {
      room?.close();
      room = null;
      root.dataset.view = "list";
      replaceChildren(layout.main, h("div", { class: "center empty-state welcome" },
        h("h2", { text: `Welcome, ${me.display_name || me.username}` }),
        h("p", { class: "muted", text: "Pick a chat on the left, or start a new one and share its invite link." })));
    }
    renderList();
  }

  socket.addEventListener("frame", (event) => {
    const frame = event.detail;
    if (room && frame.chat === room.uri) room.onFrame(frame);
    else if (frame.type === "message") {
      store.peek(frame.chat)?.add((({ type: _t, ...m }) => m)(frame));
      noteActivity(frame.chat, frame.seq, frame);
    }
  });
  socket.addEventListener("sent", (event) => {
    const frame = event.detail;
    if (room && room.timeline.pending.has(frame.client_id)) room.onSent(frame);
    else store.findPending(frame.client_id)?.confirm(frame.client_id, frame.seq, frame.id);
  });
  socket.addEventListener("sendfailed", (event) => {
    const frame = event.detail;
    if (room && room.timeline.pending.has(frame.client_id)) room.onSendFailed(frame);
    else store.findPending(frame.client_id)?.fail(frame.client_id, frame.message || frame.code);
  });
  // 4001: the token may have been revoked; /api/me tells (a 401 there signs us out).
  socket.addEventListener("authfailed", () => { api.me().catch(() => {}); });

  const onFocus = () => {
    room?.markSeen();
    refreshChats();
  };
  const onBlur = () => renderList();
  const onVisible = () => (document.visibilityState === "visible" ? onFocus() : onBlur());
  window.addEventListener("focus", onFocus);
  window.addEventListener("blur", onBlur);
  document.addEventListener("visibilitychange", onVisible);
  const timer = setInterval(refreshChats, REFRESH_MS);
  const stopRoutes = onRoute(showRoute);

  layout.signOut.addEventListener("click", async () => {
    layout.signOut.disabled = true;
    layout.signOut.textContent = "Signing out…";
    socket.stop(); // before the token is revoked, so its 4001 close is not mistaken for expiry
    try { await api.signOut(); } catch { /* the token is dropped locally either way */ }
    onSignOut();
  });

  function stop() {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    stopRoutes();
    stopStatus();
    window.removeEventListener("focus", onFocus);
    window.removeEventListener("blur", onBlur);
    document.removeEventListener("visibilitychange", onVisible);
    room?.close();
    room = null;
    socket.stop();
    setTitleCount(0);
  }

  socket.start();
  refreshChats();
  showRoute(current());
  // Signing in replaced the form that had the focus: give it to the page's main content.
  if (!document.activeElement || document.activeElement === document.body) layout.body.focus({ preventScroll: true });
  return { stop };
}
