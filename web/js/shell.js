/** The signed-in app: one socket per tab following every chat, the chat list with live unread counts and presence, rooms. */
import { api } from "/js/api.js";
import { h, replaceChildren } from "/js/dom.js";
import { current, navigate, onRoute, chatPath } from "/js/router.js";
import { session } from "/js/session.js";
import { ChatSocket } from "/js/socket.js";
import { Store } from "/js/store.js";
import { ReadSender } from "/js/read.js";
import { Presence } from "/js/presence.js";
import { Peers } from "/js/peers.js";
import { chime, setTitleCount } from "/js/notify.js";
import * as desktop from "/js/desktop.js";
import { Levels } from "/js/levels.js";
import { mentions } from "/js/mentions.js";
import { ChatRoom } from "/js/room.js";
import { renderLayout } from "/js/views/layout.js";
import { bindStatus } from "/js/views/status.js";
import { ChatListView, chatName } from "/js/views/chatlist.js";
import { joinPage } from "/js/views/joinpage.js";
import { openNewChatDialog } from "/js/views/newchat.js";
import { Toast, endedPane, endedText } from "/js/views/notice.js";
import { NotificationsDialog } from "/js/views/notifications.js";

/** Chats asked for at a time; more are loaded as the list scrolls to its end. */
const PAGE = 50;
/** How often "last seen 5 min ago" is written again (no request: just the words). */
const SEEN_EVERY_MS = 30000;

/**
 * Start the app for `me` inside `root`. `onSignOut()` is called after the user signs out.
 * Returns `{stop}` to tear everything down.
 *
 * Unread counts are the server's (`unread` and `read_seq` of GET /api/chats), kept current
 * from the socket, with no polling: the tab follows every chat of the list (live), counts
 * messages by others past the read mark, sends `read` frames as the open chat is seen, and
 * applies the `read` frames of the user's other sessions. The list is asked for again after
 * a reconnect, on focus, and when a frame is about a chat it does not know.
 * Presence comes the same way: each `subscribed` frame's `online` list, then `presence` frames.
 */
export function startShell(root, me, { onSignOut }) {
  const layout = renderLayout(root, me);
  const store = new Store();
  const socket = new ChatSocket(() => session.token);
  const reads = new ReadSender(socket);
  const stopStatus = bindStatus(layout.status, socket);
  const list = new ChatListView(layout.sidebar, { onNewChat: newChat, onMore: loadMore, me });
  const toast = new Toast(root);
  const presence = new Presence(me.id);
  const levels = new Levels();
  let panel = null; // the notifications dialog, while open
  const peers = new Peers(me, {
    onPeer: () => renderList(),
    onMembers: (uri, members) => presence.members(uri, members),
  });
  /** Chats I deleted myself: their `unsubscribed` frame says so, not "was deleted". */
  const deletedHere = new Set();
  let chats = [];
  let next = null; // cursor of the first page not loaded yet
  let deeper = false; // whether pages past the first were loaded by scrolling
  let loadingMore = false;
  let listLoaded = false;
  let lastUnread = new Map();
  let room = null;
  let stopped = false;
  let connectedOnce = false;
  let refreshTimer = null;
  let listReady;
  const firstList = new Promise((resolve) => { listReady = resolve; });

  const ctx = {
    me, socket, store,
    onActivity: (uri, seq) => noteSeq(uri, seq),
    onJoined: () => refreshChats(),
    markRead: (uri, seq) => markRead(uri, seq, true),
    follow: (uri) => follow(uri),
    chatInfo: (uri) => find(uri),
    presence, peers, levels,
    openDirect: (user) => openDirect(user),
    deleteChat: (uri) => deleteChat(uri),
    onChat: (chat) => noteChat(chat),
    /** Whether `uri` is among my chats: true/false, or null if the list is not known yet. */
    isMember: async (uri) => {
      await Promise.race([firstList, new Promise((r) => { setTimeout(r, 5000); })]);
      if (!listLoaded) return null;
      return chats.some((c) => c.uri === uri) || (next ? null : false);
    },
  };

  function find(uri) {
    return chats.find((c) => c.uri === uri) || null;
  }

  function unread(chat) {
    if (room && room.uri === chat.uri && room.seeing()) return 0;
    return Math.max(0, chat.unread || 0);
  }

  function renderList() {
    if (!listLoaded) return;
    list.update(chats, {
      openUri: room ? room.uri : null, unread, more: Boolean(next),
      nameOf: (chat) => chatName(chat, peers.get(chat.uri)),
      presenceOf: (chat) => {
        const peer = chat.kind === "direct" ? peers.get(chat.uri) : null;
        return peer ? presence.of(chat.uri, peer.id) : null;
      },
    });
    setTitleCount(chats.reduce((sum, c) => sum + unread(c), 0));
  }

  /** Follow `uri` on the socket: live, or from the resume point of its loaded timeline. */
  function follow(uri) {
    if (socket.follows(uri)) return;
    socket.subscribe(uri, () => {
      const t = store.peek(uri);
      return t ? t.resumeSeq : null;
    });
  }

  /** Follow every chat of the list (and the open one); stop following the others. */
  function syncFollows() {
    const want = new Set(chats.map((c) => c.uri));
    if (room && !room.closed && room.member) want.add(room.uri); // never before it has joined
    for (const uri of want) follow(uri);
    for (const uri of [...socket.subscriptions.keys()]) {
      if (!want.has(uri)) {
        socket.unsubscribe(uri);
        store.peek(uri)?.reset(); // it would miss events from now on
      }
    }
  }

  /** A server chat: what this tab knows of its read mark beyond the server's reply is kept. */
  function adopt(chat) {
    chat.countedTo = chat.last_seq || 0;
    const sent = reads.chats.get(chat.uri);
    const local = sent ? Math.max(sent.sent, sent.want) : 0;
    if (local > (chat.read_seq || 0)) {
      chat.read_seq = local;
      if (local >= (chat.last_seq || 0)) chat.unread = 0;
    }
    reads.known(chat.uri, chat.read_seq || 0);
    return chat;
  }

  async function refreshChats() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    try {
      const data = await api.chats({ limit: PAGE });
      if (stopped) return;
      const fresh = new Set(data.chats.map((c) => c.uri));
      data.chats.forEach(adopt);
      if (deeper && data.next) {
        // Pages loaded by scrolling stay: the first page is refreshed, the rest kept.
        chats = data.chats.concat(chats.filter((c) => !fresh.has(c.uri)));
      } else {
        chats = data.chats;
        next = data.next;
        deeper = false;
      }
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
      syncFollows();
      peers.fill(chats);
      renderList();
      if (grew) chime();
    } catch (err) {
      if (!listLoaded && !stopped && err.code !== "unauthenticated") {
        list.nav.removeAttribute("aria-busy");
        replaceChildren(list.nav, h("p", { class: "form-error", text: "Could not load your chats. Retrying…" }));
      }
    }
  }

  /** Ask for the list again shortly (several reasons in a row make one request). */
  function refreshSoon() {
    if (refreshTimer || stopped) return;
    refreshTimer = setTimeout(refreshChats, 300);
  }

  /** The list scrolled to its end: load the next page of chats, if there is one. */
  async function loadMore() {
    if (!next || loadingMore || stopped) return;
    loadingMore = true;
    try {
      const data = await api.chats({ limit: PAGE, cursor: next });
      if (stopped) return;
      const known = new Set(chats.map((c) => c.uri));
      chats = chats.concat(data.chats.filter((c) => !known.has(c.uri)).map(adopt));
      next = data.next;
      deeper = true;
      for (const c of data.chats) lastUnread.set(c.uri, unread(c));
      syncFollows();
      peers.fill(chats);
    } catch {
      // Retried when the sentinel shows again (next scroll or refresh).
    } finally {
      loadingMore = false;
    }
    renderList();
    list.setMore(Boolean(next)); // observed afresh: fires again if the end is still in view
  }

  /** A seq of `uri` we know of (our own send, the open chat's newest): bump its last_seq. */
  function noteSeq(uri, seq) {
    const chat = find(uri);
    if (!chat) {
      refreshSoon();
      return;
    }
    if (seq && seq > chat.last_seq) chat.last_seq = seq;
    renderList();
  }

  /**
   * A message or event of any followed chat: keep its last message, last_seq and unread count
   * (a message by someone else past the read mark that was not counted yet), title and my role.
   */
  function account(frame) {
    const chat = find(frame.chat);
    if (!chat) {
      refreshSoon();
      return;
    }
    let counted = false;
    if (frame.type === "message") {
      if (frame.user.id !== me.id && frame.seq > (chat.countedTo || 0) && frame.seq > (chat.read_seq || 0) && !frame.deleted) {
        chat.unread = (chat.unread || 0) + 1;
        counted = true;
      }
      chat.countedTo = Math.max(chat.countedTo || 0, frame.seq);
      if (frame.seq >= (chat.last_seq || 0)) {
        chat.last_message = { user: frame.user, message: frame.message, created_at: frame.created_at };
        const index = chats.indexOf(chat);
        if (index > 0) {
          chats.splice(index, 1);
          chats.unshift(chat);
        }
      }
    } else if (frame.kind === "delete" && frame.target > (chat.read_seq || 0) && chat.unread > 0) {
      refreshSoon(); // one fewer unread if it was someone else's
    } else if (frame.kind === "rename") {
      chat.title = frame.title;
    } else if (frame.kind === "settings") {
      chat.join = frame.join;
    } else if (frame.kind === "role" && frame.subject && frame.subject.id === me.id) {
      chat.role = frame.role;
    }
    if (frame.seq > (chat.last_seq || 0)) chat.last_seq = frame.seq;
    renderList();
    if (counted) announce(frame, chat, !(room && room.uri === chat.uri)); // the open chat chimes for itself
  }

  /**
   * A new message by someone else: the chime (`sound`) and, while the tab is hidden, a desktop
   * notification, as my level for the chat says (muted: neither; mentions: a notification
   * only when it mentions me).
   */
  async function announce(frame, chat, sound) {
    const level = await levels.effective(chat.uri);
    if (stopped || level === "none") return;
    if (sound) chime();
    if (level === "all" || mentions(frame.message, me.username)) {
      desktop.show(frame, chatName(chat, peers.get(chat.uri)), () => navigate(chatPath(chat.uri)));
    }
  }

  /** The account's notifications dialog (one at a time). */
  function openNotifications() {
    if (panel) return;
    panel = new NotificationsDialog({
      levels,
      onClosed: () => {
        panel = null;
        if (layout.notifications.isConnected) layout.notifications.focus();
      },
    });
    panel.open();
  }

  /**
   * I have read `uri` up to `seq`: seen here (`send`: tell the server, at most once a second)
   * or in another session of mine (a `read` frame).
   */
  function markRead(uri, seq, send) {
    if (send) reads.see(uri, seq);
    else reads.known(uri, seq);
    const chat = find(uri);
    if (!chat) return;
    const t = store.peek(uri);
    if (send || seq >= (chat.last_seq || 0)) chat.unread = 0; // everything there is was seen
    else if (seq <= (chat.read_seq || 0)) return; // an old mark changes nothing
    else if (t && t.covers(seq) && (t.maxSeq || 0) >= chat.last_seq) chat.unread = t.countAfter(seq, me.id);
    else refreshSoon();
    chat.read_seq = Math.max(chat.read_seq || 0, seq);
    renderList();
  }

  /** `subscribed`: who is online there; the chat's last seq now (more than we counted: a refresh is due). */
  function noteSubscribed(frame) {
    if (Array.isArray(frame.online)) presence.snapshot(frame.chat, frame.online);
    const chat = find(frame.chat);
    if (!chat) return;
    if (frame.last_seq > (chat.countedTo || 0) && frame.last_seq > (chat.read_seq || 0)) refreshSoon();
    if (frame.last_seq > (chat.last_seq || 0)) chat.last_seq = frame.last_seq;
  }

  /** A chat the server returned (renamed, its join rule changed): the list shows it so. */
  function noteChat(fresh) {
    const chat = find(fresh.uri);
    if (!chat) return;
    chat.title = fresh.title;
    chat.join = fresh.join;
    renderList();
  }

  /**
   * A chat ended for me: removed by an admin, deleted, or left in another session. It leaves
   * the list at once; an open one gives way to a notice, one in the background to a toast.
   */
  function ended(uri, reason) {
    const chat = find(uri);
    const open = room && room.uri === uri ? room : null;
    if (!chat && !open) return;
    const title = open && open.chat ? open.view.title.textContent : chatName(chat, peers.get(uri));
    const why = reason === "deleted" && deletedHere.has(uri) ? "self-deleted" : reason;
    chats = chats.filter((c) => c.uri !== uri);
    socket.subscriptions.delete(uri); // the server ended it: nothing to unsubscribe
    store.peek(uri)?.reset();
    presence.forget(uri);
    levels.forget(uri);
    if (open) {
      open.close();
      room = null;
      const pane = endedPane(title, why);
      replaceChildren(layout.main, pane.el);
      // The focus was in the chat (or its settings), which are gone: the notice takes it.
      if (!document.activeElement || document.activeElement === document.body) pane.heading.focus();
    } else {
      toast.show(endedText(title, why));
    }
    renderList();
  }

  /** Delete a chat I own (the settings' typed confirmation came first). */
  async function deleteChat(uri) {
    deletedHere.add(uri);
    try {
      await api.deleteChat(uri);
    } catch (err) {
      deletedHere.delete(uri);
      throw err;
    }
    ended(uri, "deleted"); // unless its `unsubscribed` frame came first
  }

  /** "Message" next to a member: open (or make) the direct chat with them. */
  async function openDirect(user) {
    const { chat } = await api.direct(user.username);
    if (stopped) return;
    peers.set(chat.uri, user);
    if (!find(chat.uri)) {
      chats.unshift(adopt({ ...chat, role: "member", read_seq: chat.last_seq, unread: 0, last_message: null }));
      syncFollows();
    }
    navigate(chatPath(chat.uri));
    refreshSoon();
  }

  /** Joined through an invite page: the chat goes into the list and opens. */
  function joinedByInvite(chat) {
    if (!find(chat.uri)) chats.unshift(adopt({ ...chat, role: "member", read_seq: chat.last_seq, unread: 0, last_message: null }));
    navigate(chatPath(chat.uri), { replace: true });
    refreshChats();
  }

  async function newChat() {
    const chat = await openNewChatDialog(async (title) => (await api.createChat(title)).chat);
    if (!chat) return;
    if (!chats.some((c) => c.uri === chat.uri)) chats.unshift(chat);
    navigate(chatPath(chat.uri));
    refreshChats();
  }

  function showRoute(route) {
    if (route.name === "invite") {
      room?.close();
      room = null;
      root.dataset.view = "chat";
      replaceChildren(layout.main, joinPage(route.code, { onJoined: joinedByInvite }).el);
    } else if (route.name === "chat") {
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
    if (frame.type === "read") {
      markRead(frame.chat, frame.seq, false);
      return;
    }
    if (frame.type === "chats_changed") {
      refreshSoon(); // a chat was made, joined, left or deleted elsewhere: fetch the list
      return;
    }
    if (frame.type === "presence") {
      if (frame.user) presence.set(frame.chat, frame.user.id, Boolean(frame.online));
      return;
    }
    if (frame.type === "unsubscribed") {
      ended(frame.chat, frame.reason || "left"); // removed, deleted, or left elsewhere
      return;
    }
    const timelineFrame = frame.type === "message" || frame.type === "event";
    if (timelineFrame) account(frame);
    else if (frame.type === "subscribed") noteSubscribed(frame);
    else if (frame.type === "error" && frame.chat && !frame.client_id && frame.code === "invalid") {
      // The resume point was refused (the chat is behind it): follow it from now, afresh.
      store.peek(frame.chat)?.reset();
      if (socket.follows(frame.chat)) {
        socket.subscriptions.delete(frame.chat);
        follow(frame.chat);
      }
    } else if (frame.type === "error" && frame.chat && !frame.client_id
               && (frame.code === "forbidden" || frame.code === "not_found")) {
      // Not (or no longer) a member: not followed, so following it later asks again.
      socket.subscriptions.delete(frame.chat);
      store.peek(frame.chat)?.reset();
      refreshSoon();
    }
    if (room && frame.chat === room.uri) {
      room.onFrame(frame);
    } else if (timelineFrame) {
      // A chat in the background: keep its loaded timeline current, or drop it if out of step.
      const t = store.peek(frame.chat);
      if (t && t.loaded) {
        t.receive(frame);
        if (t.hasGap) t.reset();
      }
    }
  });
  socket.addEventListener("ready", () => {
    reads.resend();
    if (connectedOnce) refreshChats(); // counts may have moved while we were away
    connectedOnce = true;
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
  presence.addEventListener("change", (event) => {
    const uri = event.detail.chat;
    if (room && room.uri === uri) room.onPresence();
    if (peers.get(uri)) renderList();
  });
  // "last seen 5 min ago" ages: write the words again now and then (nothing is asked for).
  const seenTimer = setInterval(() => {
    room?.onPresence();
    renderList();
  }, SEEN_EVERY_MS);
  const stopRoutes = onRoute(showRoute);

  layout.notifications.addEventListener("click", openNotifications);
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
    clearInterval(seenTimer);
    clearTimeout(refreshTimer);
    peers.stop();
    reads.stop();
    stopRoutes();
    stopStatus();
    window.removeEventListener("focus", onFocus);
    window.removeEventListener("blur", onBlur);
    document.removeEventListener("visibilitychange", onVisible);
    room?.close();
    room = null;
    panel?.close();
    socket.stop();
    setTitleCount(0);
  }

  socket.start();
  levels.loadDefault();
  refreshChats();
  showRoute(current());
  // Signing in replaced the form that had the focus: give it to the page's main content.
  if (!document.activeElement || document.activeElement === document.body) layout.body.focus({ preventScroll: true });
  return { stop };
}
