"""What a notification says: the webhook's JSON body, its one-line text, and the e-mail."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chatire.model import Chat, Message, User

#: The most messages one notification lists; ``more`` counts the rest.
SHOWN = 20
#: ``compose(id, user, chat, due messages, how many more) -> payload``: called in the
#: transaction that fixes a notification's content (chatire.store.notify.prepare_due).
Compose = Callable[[str, User, Chat, list[Message], int], str]
#: The longest excerpt of a message in the one-line summary.
_EXCERPT = 140


def chat_url(public_url: str, uri: str) -> str:
    """The link that opens a chat in the UI."""
    return f"{public_url.rstrip('/')}/c/{uri}"


def _one_line(text: str, limit: int = _EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def summary(chat_title: str, url: str, messages: list[dict[str, Any]], more: int) -> str:
    """One line for a Slack- or Mattermost-style receiver: who wrote what, and where."""
    count = len(messages) + more
    last = messages[-1]
    said = f"{last['user']['display_name']}: {_one_line(last['message'])}"
    if count == 1:
        return f"New message in {chat_title}: {said} — {url}"
    return f"{count} new messages in {chat_title}, latest {said} — {url}"


def composer(public_url: Callable[[], str]) -> Compose:
    """The Compose function of chatire.store.notify, for links under ``public_url()``."""

    def compose(nid: str, user: User, chat: Chat, messages: list[Message], more: int) -> str:
        url = chat_url(public_url(), chat.uri)
        shown = [m.to_json() for m in messages]
        body = {"type": "chatire.notification", "id": nid, "user": user.to_json(),
                "chat": {"uri": chat.uri, "title": chat.title, "url": url},
                "messages": shown, "more": more,
                "text": summary(chat.title, url, shown, more)}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    return compose


def mail(payload: str) -> tuple[str, str]:
    """The subject and plain text of a notification's e-mail."""
    body = json.loads(payload)
    chat = body["chat"]
    count = len(body["messages"]) + body["more"]
    noun = "message" if count == 1 else "messages"
    subject = _one_line(f"{count} new {noun} in {chat['title']}", 200)
    lines = [f"{count} new {noun} in {chat['title']} while you were away:", ""]
    for message in body["messages"]:
        lines.append(f"{message['user']['display_name']} (@{message['user']['username']}):")
        lines += ["    " + line for line in message["message"].splitlines() or [""]]
        lines.append("")
    if body["more"]:
        lines += [f"...and {body['more']} more.", ""]
    lines += [f"Open the chat: {chat['url']}", "",
              "You get this because of your notification settings in chatire."]
    return subject, "\n".join(lines)
