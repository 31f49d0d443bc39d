"""The timeline's rules: who may edit, delete and react, the events page, read state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IReactorTime

from chatire.chats import ChatService, is_chat_uri, token_refused
from chatire.errors import ChatireError, Conflict, Forbidden, Invalid, NotFound, RateLimited
from chatire.interfaces import IStore
from chatire.limits import (
    DEFAULT_EVENTS_LIMIT,
    MAX_EMOJI_CHARS,
    MAX_EVENTS_LIMIT,
    MAX_SEQ,
)
from chatire.model import Ask, Event, Standing, Timeline, User
from chatire.readmarks import ReadMarks
from chatire.text import REFUSED, Text, check

T = TypeVar("T")

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


def _may_edit(standing: Standing) -> None:
    if standing.author != standing.user.id:
        raise Forbidden("only its author may edit a message")
    if standing.deleted:
        raise Conflict("the message was deleted")


def _may_delete(standing: Standing) -> None:
    if standing.author != standing.user.id and standing.role not in MODERATORS:
        raise Forbidden("only its author, an admin or the owner may delete a message")


def _may_react(standing: Standing) -> None:
    if standing.deleted:
        raise Conflict("the message was deleted")


class TimelineService:
    """Edits, deletes, reactions, the raw timeline and read marks: every rule of who may
    do what to a chat's timeline (posting itself is ChatService.submit).

    An edit, delete or reaction is asked with the bearer token and costs one store
    transaction: the token check, these rules and the change (chatire.store.timeline).
    """

    def __init__(self, chats: ChatService, store: IStore, clock: IReactorTime,
                 read_window: float = 0.5, max_in_flight: int = 2) -> None:
        self._chats = chats
        self._store = store
        # At most this many changes hold a store connection at once (half the default
        # pool): the rest wait here, and the appender's group commits keep the others.
        # A change is asked (its time, for the token's expiry) once it has its turn.
        self._in_flight = DeferredSemaphore(max(1, max_in_flight))
        self._pending: Counter[str] = Counter()  # changes waiting or at the store, a token
        self.reads = ReadMarks(store, clock, chats.events.read_marked, read_window)

    def _ask(self, token: str, uri: str, seq: int, judge: Callable[[Standing], None],
             counted: bool) -> Ask:
        """The Ask of a change: the store reads the standing and ``judge`` weighs it after
        the checks every change shares; a ``counted`` change takes from --send-rate."""
        def rules(standing: Standing | None) -> None:
            if standing is None:
                raise token_refused()
            if standing.chat is None:
                raise NotFound("no such chat")
            if standing.role is None:
                raise Forbidden("you are not a member of this chat")
            if standing.author is None:
                raise NotFound("no such message")
            judge(standing)

        # A seq no message can have is asked as 0 (none has it): NotFound in its turn.
        return Ask(self._chats.token_digest(token), uri, seq if 1 <= seq <= MAX_SEQ else 0,
                   self._chats.now(), rules, self._chats.take_send if counted else None)

    async def _in_turn(self, token: str, change: Callable[[], Deferred[T]]) -> T:
        """Run a change once it has its turn at the store; a token with
        --max-pending-changes waiting or running already is refused at once (its burst does
        not queue ahead of the other clients' changes)."""
        key = self._chats.token_digest(token)
        most = self._chats.config.max_pending_changes
        if most and self._pending[key] >= most:
            raise RateLimited(f"at most {most} changes at once; wait for their answers",
                              retry_after=1)
        self._pending[key] += 1
        try:
            return await self._in_flight.run(change)
        finally:
            self._pending[key] -= 1
            if not self._pending[key]:
                del self._pending[key]

    async def _checked(self, token: str, uri: str, check: Callable[[], T]) -> T:
        """What a change checks before the store is asked; a bad token is told first,
        as everywhere (only then is the token looked up on its own)."""
        try:
            checked = check()
            if not is_chat_uri(uri):
                raise NotFound("no such chat")
            return checked
        except ChatireError:
            await self._chats.authenticate(token)
            raise

    async def edit(self, token: str, uri: str, seq: int, text: str) -> Event:
        """Replace the text of one's own message (not once it is deleted)."""
        text = await self._checked(token, uri, lambda: self._chats.clean_text(text))
        event: Event = await self._in_turn(token, lambda: self._store.edit_asked(
            self._ask(token, uri, seq, _may_edit, counted=True), text))
        self._chats.events.event_committed(event)
        return event

    async def delete(self, token: str, uri: str, seq: int) -> Event:
        """Erase a message: its author, or an admin or the owner of the chat. Deleting it
        again answers with the first delete event."""
        await self._checked(token, uri, lambda: None)
        event, created = await self._in_turn(token, lambda: self._store.delete_asked(
            self._ask(token, uri, seq, _may_delete, counted=False)))
        if created:
            self._chats.events.event_committed(event)
        return event

    async def react(self, token: str, uri: str, seq: int, emoji: str,
                    on: bool) -> Event | None:
        """Add (``on``) or take back the user's emoji on a message; None if that was so."""
        await self._checked(token, uri, lambda: check_emoji(emoji))
        event: Event | None = await self._in_turn(token, lambda: self._store.react_asked(
            self._ask(token, uri, seq, _may_react, counted=True), emoji, on))
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
