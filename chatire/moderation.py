"""The rules of who runs a chat: roles, settings, invites, removals and bans, direct chats."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from chatire.chats import USERNAME, ChatService
from chatire.errors import Forbidden, Invalid, NotFound
from chatire.interfaces import IStore
from chatire.limits import MAX_INVITE_SECONDS, MAX_INVITE_USES, MAX_TITLE_CHARS
from chatire.model import Chat, Event, Invite, Member, User
from chatire.text import Text, check

#: What an invite code the server issues looks like: anything else is no invite.
INVITE_CODE = re.compile(r"[A-Za-z0-9_-]{22,64}")
ROLES = ("owner", "admin", "member")
#: Roles that run a chat: settings, invites, removals, bans.
ADMINS = frozenset({"owner", "admin"})


class Moderation:
    """Every rule of running a chat, over the store; knows nothing of HTTP or sockets."""

    def __init__(self, chats: ChatService, store: IStore) -> None:
        self._chats = chats
        self._store = store

    async def _standing(self, user: User, uri: str) -> tuple[Chat, str]:
        """The chat, fresh, and the user's role in it; NotFound or Forbidden otherwise."""
        chat = await self._chats.chat(uri)
        role: str | None = await self._store.membership(chat.id, user.id)
        if role is None:
            raise Forbidden("you are not a member of this chat")
        return chat, role

    async def _admin(self, user: User, uri: str, *, owner: bool = False) -> Chat:
        """The group chat if the user runs it (``owner``: owns it); Forbidden otherwise."""
        return (await self._running(user, uri, owner=owner))[0]

    async def _running(self, user: User, uri: str, *,
                       owner: bool = False) -> tuple[Chat, str]:
        """_admin, and the user's role."""
        chat, role = await self._standing(user, uri)
        if chat.kind != "group":
            raise Forbidden("a direct chat has no roles, settings or invites")
        if role != "owner" and (owner or role not in ADMINS):
            raise Forbidden("only the owner may do that" if owner
                            else "only an admin or the owner may do that")
        return chat, role

    def _announce(self, events: list[Event]) -> None:
        for event in events:
            self._chats.events.event_committed(event)

    async def _member(self, chat: Chat, user_id: int) -> Member:
        members: list[Member] = await self._store.members(chat.id)
        for member in members:
            if member.user.id == user_id:
                return member
        raise NotFound("that user is not a member of this chat")

    # -- settings -----------------------------------------------------------------------

    async def change(self, user: User, uri: str, title: str | None,
                     join: str | None) -> Chat:
        """Rename the chat or choose how people join (admins and the owner)."""
        if title is not None:
            title = check("title", title.strip(), Text.NAME)
            if len(title) > MAX_TITLE_CHARS:
                raise Invalid(f"title: at most {MAX_TITLE_CHARS} characters")
        if join is not None and join not in ("link", "invite"):
            raise Invalid('join: "link" or "invite"')
        chat = await self._admin(user, uri)
        changed, events = await self._store.change_chat(chat, user, title, join,
                                                        self._chats.now())
        self._announce(events)
        return changed

    async def delete(self, user: User, uri: str) -> None:
        """Delete the chat and everything in it (the owner)."""
        chat = await self._admin(user, uri, owner=True)
        members: list[Member] = await self._store.members(chat.id)
        await self._store.delete_chat(chat)
        self._chats.events.chats_changed([m.user.id for m in members])
        self._chats.forget(uri)
        self._chats.events.chat_deleted(uri)

    # -- members --------------------------------------------------------------------------

    async def remove(self, user: User, uri: str, subject_id: int, ban: bool) -> None:
        """Put a member out, and with ``ban`` keep them out: the owner removes anyone else,
        an admin removes members only."""
        chat, actor_role = await self._running(user, uri)
        if subject_id == user.id:
            raise Invalid("to leave a chat, leave it")
        subject_role: str | None = await self._store.membership(chat.id, subject_id)
        if subject_role is not None and actor_role != "owner" and subject_role != "member":
            raise Forbidden("an admin may remove members only")
        if subject_role is None and not ban:
            raise NotFound("that user is not a member of this chat")
        subject = await self._chats.user_by_id(subject_id)
        event: Event | None = await self._store.remove(chat, user, subject, ban,
                                                       self._chats.now())
        if event is not None:
            self._announce([event])
        if subject_role is not None:
            self._chats.events.membership_ended(uri, subject_id, "removed",
                                                None if event is None else event.seq)
            self._chats.events.chats_changed([subject_id])

    async def unban(self, user: User, uri: str, subject_id: int) -> None:
        chat = await self._admin(user, uri)
        if not await self._store.unban(chat.id, subject_id):
            raise NotFound("that user is not banned from this chat")

    async def set_role(self, user: User, uri: str, subject_id: int, role: str) -> Member:
        """Make a member admin or member, or hand the chat over (the owner)."""
        if role not in ROLES:
            raise Invalid('role: "owner", "admin" or "member"')
        chat = await self._admin(user, uri, owner=True)
        if subject_id == user.id:
            raise Invalid("the owner's role changes only by handing the chat over")
        subject = await self._member(chat, subject_id)
        events: list[Event] = await self._store.set_role(chat, user, subject.user, role,
                                                         self._chats.now())
        self._announce(events)
        return await self._member(chat, subject_id)

    # -- invites ----------------------------------------------------------------------------

    async def create_invite(self, user: User, uri: str, expires_in: int | None,
                            max_uses: int | None) -> Invite:
        if expires_in is not None and not 1 <= expires_in <= MAX_INVITE_SECONDS:
            raise Invalid(f"expires_in: 1 to {MAX_INVITE_SECONDS} seconds")
        if max_uses is not None and not 1 <= max_uses <= MAX_INVITE_USES:
            raise Invalid(f"max_uses: 1 to {MAX_INVITE_USES}")
        chat = await self._admin(user, uri)
        now = self._chats.now()
        expires = None if expires_in is None else now + timedelta(seconds=expires_in)
        invite: Invite = await self._store.create_invite(chat, user, secrets.token_urlsafe(24),
                                                         expires, max_uses, now)
        return invite

    async def invites(self, user: User, uri: str) -> list[Invite]:
        chat = await self._admin(user, uri)
        found: list[Invite] = await self._store.invites(chat, self._chats.now())
        return found

    async def revoke_invite(self, user: User, uri: str, code: str) -> None:
        chat = await self._admin(user, uri)
        if not INVITE_CODE.fullmatch(code) or not await self._store.revoke_invite(chat, code):
            raise NotFound("no such invite")

    async def invite_chat(self, code: str) -> tuple[Chat, User]:
        """The chat a live invite leads to and who made it (for the join page); one 404
        for every failure."""
        if not INVITE_CODE.fullmatch(code):
            raise NotFound("no such invite")
        found: tuple[Chat, User] | None = await self._store.invite_chat(code,
                                                                         self._chats.now())
        if found is None:
            raise NotFound("no such invite")
        return found

    async def use_invite(self, user: User, code: str) -> Chat:
        """Join through an invite (a member: nothing changes, no use is taken)."""
        if not INVITE_CODE.fullmatch(code):
            raise NotFound("no such invite")
        chat, joined = await self._store.use_invite(code, user, self._chats.now())
        if joined is not None:
            self._announce([joined])
            self._chats.events.chats_changed([user.id])
            chat = await self._chats.chat(chat.uri)
        return chat

    # -- direct chats -----------------------------------------------------------------------

    async def direct(self, user: User, username: str) -> tuple[Chat, bool]:
        """The one direct chat of the user and another, made on first ask from either side."""
        if not USERNAME.fullmatch(username):
            raise NotFound(f"no user named {username[:40]!r}")
        other: User | None = await self._store.find_user(username)
        if other is None:
            raise NotFound(f"no user named {username!r}")
        if other.id == user.id:
            raise Invalid("a direct chat is with somebody else")
        found: tuple[Chat, bool] = await self._store.direct_chat(
            secrets.token_urlsafe(18), user, other, self._chats.now())
        if found[1]:
            self._chats.events.chats_changed([user.id, other.id])
        return found

