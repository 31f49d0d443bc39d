"""The timeline's rules: who may edit, delete and react, the events page, read state."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from chatire.chats import ChatService
from chatire.errors import Conflict, Forbidden, Invalid, NotFound
from chatire.interfaces import IStore
from chatire.limits import DEFAULT_EVENTS_LIMIT, MAX_EMOJI_CHARS, MAX_EVENTS_LIMIT, MAX_SEQ
from chatire.model import Chat, Event, Message, Timeline, User
from chatire.readmarks import ReadMarks
from chatire.text import REFUSED, Text, check

#: Roles that may delete any member's message.
MODERATORS = frozenset({"owner", "admin"})


#: What an emoji may be, as the OpenAPI document spells it.
EMOJI_PATTERN = (f"^[^\\s\\ufeff{REFUSED[Text.NAME]}]{{1,{MAX_EMOJI_CHARS}}}$")


def check_emoji(emoji: str) -> str:
    """An emoji as a reaction may be: 1 to MAX_EMOJI_CHARS characters, no white space
    (nor what a name may not hold); joiners and variation selectors are fine."""
    check("emoji", emoji, Text.NAME)
    if not 1 <= len(emoji) <= MAX_EMOJI_CHARS:
        raise Invalid(f"emoji: 1 to {MAX_EMOJI_CHARS} characters")
    if any(char.isspace() or char == "\ufeff" for char in emoji):
        raise Invalid("emoji: must not hold white space")
    return emoji


class TimelineService:
    """Edits, deletes, reactions, the raw timeline and read marks: every rule of who may
    do what to a chat's timeline (posting itself is ChatService.submit)."""

    def __init__(self, chats: ChatService, store: IStore, clock: IReactorTime,
                 read_window: float = 0.5) -> None:
        self._chats = chats
        self._store = store
        self.reads = ReadMarks(store, clock, chats.events.read_marked, read_window)

    async def _message(self, chat: Chat, seq: int) -> Message:
        if not 1 <= seq <= MAX_SEQ:
            raise NotFound("no such message")
        message: Message | None = await self._store.message_at(chat, seq)
        if message is None:
            raise NotFound("no such message")
        return message

    async def edit(self, user: User, uri: str, seq: int, text: str) -> Event:
        """Replace the text of one's own message (not once it is deleted)."""
        text = self._chats.clean_text(text)
        chat, _ = await self._chats.member_role(user, uri)
        message = await self._message(chat, seq)
        if message.user.id != user.id:
            raise Forbidden("only its author may edit a message")
        if message.deleted:
            raise Conflict("the message was deleted")
        self._chats.take_send(user)
        event: Event = await self._store.edit_message(chat, seq, user, text, self._chats.now())
        self._chats.events.event_committed(event)
        return event

    async def delete(self, user: User, uri: str, seq: int) -> Event:
        """Erase a message: its author, or an admin or the owner of the chat. Deleting it
        again answers with the first delete event."""
        chat, role = await self._chats.member_role(user, uri)
        message = await self._message(chat, seq)
        if message.user.id != user.id and role not in MODERATORS:
            raise Forbidden("only its author, an admin or the owner may delete a message")
        event, created = await self._store.delete_message(chat, seq, user, self._chats.now())
        if created:
            self._chats.events.event_committed(event)
        return event

    async def react(self, user: User, uri: str, seq: int, emoji: str, on: bool) -> Event | None:
        """Add (``on``) or take back the user's emoji on a message; None if that was so."""
        check_emoji(emoji)
        chat, _ = await self._chats.member_role(user, uri)
        message = await self._message(chat, seq)
        if message.deleted:
            raise Conflict("the message was deleted")
        self._chats.take_send(user)
        event: Event | None = await self._store.react(chat, seq, user, emoji, on,
                                                      self._chats.now())
        if event is not None:
            self._chats.events.event_committed(event)
        return event

    async def events(self, user: User, uri: str, after: int | None,
                     limit: int | None) -> Timeline:
        """A page of the raw timeline after a seq: every kind, ascending."""
        after = 0 if after is None else after
        if not 0 <= after <= MAX_SEQ:
            raise Invalid("after: must be 0 or more")
        limit = DEFAULT_EVENTS_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_EVENTS_LIMIT:
            raise Invalid(f"limit: 1 to {MAX_EVENTS_LIMIT}")
        chat = await self._chats.member_chat(user, uri)
        page: Timeline = await self._store.events(chat, after, limit, user.id)
        return page

    async def mark_read(self, user: User, uri: str, seq: int, origin: object = None,
                        known: int | None = None) -> None:
        """Raise the user's read_seq in the chat (written within a short window).

        ``known``: the caller is a socket subscribed to the chat and was sent it up to this
        seq. Membership was checked at the subscribe, so no store read; the write raises
        members' marks only (a mark made just after a leave changes nothing), and the mark,
        capped at ``known``, is told to the user's other sockets before it is written."""
        if not 0 <= seq <= MAX_SEQ:
            raise Invalid("seq: must be 0 or more")
        if known is not None:
            chat = await self._chats.known_chat(uri)
        else:
            chat, _ = await self._chats.member_role(user, uri)
        self.reads.mark(chat, user.id, seq, origin, known)

    def flush(self) -> Deferred[None]:
        """Write the read marks still waiting (at shutdown)."""
        return self.reads.flush()
