/** Client-side routes with history.pushState: "/" (home), "/c/<uri>" (a chat) and "/i/<code>" (an invite's join page). */

const listeners = new Set();

/** Parse a path into a route: `{name: "home"}`, `{name: "chat", uri}` or `{name: "invite", code}`. */
export function parse(pathname = location.pathname) {
  const match = /^\/c\/([A-Za-z0-9_~.-]+)\/?$/.exec(pathname);
  if (match) return { name: "chat", uri: decodeURIComponent(match[1]) };
  const invite = /^\/i\/([A-Za-z0-9_-]+)\/?$/.exec(pathname);
  if (invite) return { name: "invite", code: invite[1] };
  return { name: "home" };
}

export function current() {
  return parse(location.pathname);
}

/** The shareable link of a chat. */
export function chatLink(uri) {
  return `${location.origin}/c/${encodeURIComponent(uri)}`;
}

export function chatPath(uri) {
  return `/c/${encodeURIComponent(uri)}`;
}

/** Go to `path`; listeners hear the new route. */
export function navigate(path, { replace = false } = {}) {
  if (path !== location.pathname) {
    if (replace) history.replaceState(null, "", path);
    else history.pushState(null, "", path);
  }
  emit();
}

/** Call `fn(route)` on every navigation; returns an unsubscribe function. */
export function onRoute(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit() {
  const route = current();
  for (const fn of [...listeners]) fn(route);
}

window.addEventListener("popstate", emit);

/** Make same-origin `<a data-route>` clicks navigate without a page load. */
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target instanceof Element ? event.target.closest("a[data-route]") : null;
  if (!link || link.origin !== location.origin) return;
  event.preventDefault();
  navigate(link.pathname);
});
