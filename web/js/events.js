/** The timeline's events applied to messages (edit, delete, react, unreact), and the words of a line event. */

/** Event kinds shown as a line of their own in the timeline. */
export const LINE_KINDS = new Set(["join", "leave", "remove", "rename", "role", "settings"]);

/** Event kinds that change the chat itself (its title, rules, members' roles): the room hears of them. */
export const CHAT_KINDS = new Set(["remove", "rename", "role", "settings"]);

/** Event kinds that change a message (their `target`). */
export const MESSAGE_KINDS = new Set(["edit", "delete", "react", "unreact"]);

/** A message as the UI keeps it: the protocol's fields with their v2 defaults filled in. */
export function normalizeMessage(raw) {
  const { type: _type, kind: _kind, ...message } = raw;
  return {
    ...message,
    kind: "message",
    reply_to: message.reply_to ?? null,
    edited_at: message.edited_at ?? null,
    deleted: Boolean(message.deleted),
    message: message.deleted ? "" : (message.message ?? ""),
    reactions: (message.reactions || []).map((r) => ({ emoji: r.emoji, count: r.count, users: [...(r.users || [])] })),
  };
}

/**
 * Apply an edit/delete/react/unreact event to `message` in place. Each sets a state rather
 * than a difference (react/unreact carry the emoji's `count` after the event), so applying
 * one twice changes nothing. Returns whether the message changed.
 */
export function applyToMessage(message, event) {
  const before = JSON.stringify([message.message, message.edited_at, message.deleted, message.reactions]);
  if (event.kind === "delete") {
    message.deleted = true;
    message.message = "";
    message.reactions = [];
  } else if (event.kind === "edit") {
    if (!message.deleted) {
      message.message = event.message ?? "";
      message.edited_at = event.edited_at || event.created_at || message.edited_at;
    }
  } else if ((event.kind === "react" || event.kind === "unreact") && !message.deleted) {
    setReaction(message, event.emoji, event.count, event.user && event.user.id, event.kind === "react");
  }
  return before !== JSON.stringify([message.message, message.edited_at, message.deleted, message.reactions]);
}

function setReaction(message, emoji, count, userId, added) {
  let entry = message.reactions.find((r) => r.emoji === emoji);
  if (!entry) {
    if (!(count > 0)) return;
    entry = { emoji, count: 0, users: [] };
    message.reactions.push(entry);
  }
  if (typeof count === "number") entry.count = count;
  else entry.count = Math.max(0, entry.count + (added ? 1 : -1));
  const has = entry.users.includes(userId);
  if (added && !has && userId !== undefined) entry.users.push(userId);
  if (!added && has) entry.users = entry.users.filter((id) => id !== userId);
  if (entry.count <= 0) message.reactions = message.reactions.filter((r) => r !== entry);
}

function nameOf(user) {
  return (user && (user.display_name || user.username)) || "Someone";
}

/** The sentence of a line event, e.g. "Alice joined". */
export function lineText(event) {
  switch (event.kind) {
    case "join": return `${nameOf(event.user)} joined`;
    case "leave": return `${nameOf(event.user)} left`;
    case "remove": return event.ban
      ? `${nameOf(event.user)} removed and banned ${nameOf(event.subject)}`
      : `${nameOf(event.user)} removed ${nameOf(event.subject)}`;
    case "rename": return `${nameOf(event.user)} renamed the chat to “${event.title || ""}”`;
    case "role": return roleText(event);
    case "settings": return event.join === "invite"
      ? `${nameOf(event.user)} made the chat invite-only`
      : `${nameOf(event.user)} let anyone with the link join`;
    default: return "";
  }
}

/** "Ann made Ben an admin", "Ann made Ben the owner", "Ann is now an admin" (handing over). */
function roleText(event) {
  const subject = event.subject || {};
  const what = { owner: "the owner", admin: "an admin", member: "a member" }[event.role] || event.role;
  if (event.user && subject.id === event.user.id) return `${nameOf(subject)} is now ${what}`;
  return `${nameOf(event.user)} made ${nameOf(subject)} ${what}`;
}
