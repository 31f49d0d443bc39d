"""The checker of a History: PROTOCOL.md's delivery guarantees over the whole chat timeline.

A follower's stream is every seq of the chat, whatever its kind (a message, an edit, a
delete, a reaction, a join), so the stream checks run over all seqs. Six anomalies:

- lost: an acknowledged message or change that a follower (from its start on) never got
  or the store's timeline does not hold; an acknowledged join with no join event;
- duplicated: a seq a follower got twice; one send stored twice; one change or join made
  twice (two events for one acknowledged change, a second delete of a message);
- unexpected: a message or event received or stored that nobody sent or made, that
  contradicts its acknowledgement, or whose operation was refused;
- gaps: a follower's stream jumping over a seq, or ending short of the chat's last seq;
- reordered: a follower getting a seq lower than one it already had;
- wrong: a message whose final state, in the store (GET messages) or as a follower built
  it from its frames in order, is not what the acknowledged operations make it: the text
  of the last acknowledged edit (or the original), deleted (text "") if and only if a
  delete was, reactions per user and emoji as the last acknowledged react or unreact; and
  a stored event whose ``count`` disagrees, or a react/unreact acknowledged as "nothing to
  do" when that client's own acknowledged changes say otherwise.

An indeterminate operation counts as done if and only if the store's timeline holds it
(the acknowledged ones are placed by the seq of their event, those by the store's seq).
A correct run has all six at zero.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from tests.reliability.history import Change, History, Outcome, Report, Send
from tests.reliability.timeline import CHANGES, Entry, MessageState, Replica

Op = Send | Change
Signature = tuple[str, int | None, int | None, str | None]


def _name(op: Op) -> str:
    if isinstance(op, Send):
        return op.client_id
    return f"{op.key} ({op.kind} of #{op.target} by {op.user})"


def _kind(op: Op) -> str:
    return "message" if isinstance(op, Send) else op.kind


def _signature(kind: str, user: int | None, target: int | None, emoji: str | None,
               ) -> Signature:
    return (kind, user, target, emoji if kind in ("react", "unreact") else None)


def _differs(change: Change, e: Entry, erased: bool) -> str | None:
    """How event ``e`` is not the one ``change`` makes; None if it is."""
    if e.kind != change.kind:
        return f"a {e.kind}"
    if e.target != change.target:
        return f"target #{e.target}"
    if e.user != change.user:
        return f"user {e.user}"
    if change.kind in ("react", "unreact") and e.emoji != change.emoji:
        return f"emoji {e.emoji!r}"
    if change.kind == "edit" and e.text != change.text and not (erased and e.text == ""):
        return f"text {e.text!r}"
    return None


def check(h: History) -> Report:
    """Judge a whole history."""
    return _Checker(h).run()


class _Checker:
    """One run of the checker over a history."""

    def __init__(self, h: History) -> None:
        self.h = h
        self.details: list[str] = []
        self.lost = self.duplicated = self.gaps = self.reordered = self.wrong = 0
        # Entries (chat, seq, id) received or stored that should not exist as they are.
        self.bad: set[tuple[str, int, int]] = set()
        # The seqs at which each send (chat, client_id) was seen, received or stored.
        self.placed: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.stored_at: dict[tuple[str, int], Entry] = {}
        self.acked: dict[tuple[str, int], Op] = {}
        self.acked_in: dict[str, list[int]] = defaultdict(list)
        self.landed: dict[tuple[str, int], Change] = {}  # changes the store holds, by seq
        self.streams: dict[tuple[str, str], list[Entry]] = defaultdict(list)

    def note(self, text: str) -> None:
        if len(self.details) < self.h.max_details:
            self.details.append(text)

    def unexpected(self, chat: str, e: Entry, where: str, why: str) -> None:
        if (chat, e.seq, e.id) not in self.bad:
            self.bad.add((chat, e.seq, e.id))
            self.note(f"{where} {chat}#{e.seq} ({e.kind}) id {e.id}: {why}")

    def run(self) -> Report:
        h = self.h
        ops: list[Op] = [*h.sends.values(), *h.changes.values()]
        for op in ops:
            if op.outcome is Outcome.PENDING:
                op.outcome = Outcome.INDETERMINATE
        self.acks()
        for chat in h.stored:
            self.store(chat)
        self.receipts()
        self.followers()
        deleted: set[tuple[str, int]] = set()
        for chat in sorted({*h.stored, *(c for _, c in h.follows), *self.acked_in}):
            deleted |= self.states(chat)
        self.nothing_to_do(deleted)
        for (chat, client_id), seqs in self.placed.items():
            if len(seqs) > 1:  # one send stored under two seqs
                self.duplicated += len(seqs) - 1
                self.note(f"{client_id} appears as {chat}#{sorted(seqs)}")
        sends = Counter(s.outcome for s in h.sends.values())
        changes = Counter(c.outcome for c in h.changes.values())
        return Report(
            lost=self.lost, duplicated=self.duplicated, unexpected=len(self.bad),
            gaps=self.gaps, reordered=self.reordered, wrong=self.wrong,
            sends=len(h.sends), ok=sends[Outcome.OK], failed=sends[Outcome.FAILED],
            indeterminate=sends[Outcome.INDETERMINATE], receipts=len(h.receipts),
            changes=len(h.changes), changes_ok=changes[Outcome.OK],
            changes_failed=changes[Outcome.FAILED],
            changes_indeterminate=changes[Outcome.INDETERMINATE], details=tuple(self.details))

    # -- acknowledgements --------------------------------------------------------------------

    def acks(self) -> None:
        for send in self.h.sends.values():
            if send.outcome is Outcome.OK:
                assert send.seq is not None and send.id is not None
                self.ack(send.chat, send.seq, send.id, send)
        for change in self.h.changes.values():
            if change.outcome is not Outcome.OK or change.event is None:
                continue  # acknowledged with no event: nothing to place
            e = change.event
            why = _differs(change, e, erased=False)
            if why is not None:
                self.unexpected(change.chat, e, "acknowledged", f"{_name(change)} made {why}")
                continue
            self.ack(change.chat, e.seq, e.id, change)

    def ack(self, chat: str, seq: int, id: int, op: Op) -> None:
        other = self.acked.get((chat, seq))
        if other is None:
            self.acked[(chat, seq)] = op
            self.acked_in[chat].append(seq)
        elif not (isinstance(other, Change) and isinstance(op, Change) and other.id == id
                  and other.kind == op.kind == "delete" and other.target == op.target):
            # (deleting again is acknowledged with the first delete event: that is fine)
            self.bad.add((chat, seq, id))
            self.note(f"{_name(op)} and {_name(other)} both acked as {chat}#{seq}")

    # -- the store --------------------------------------------------------------------------------

    def store(self, chat: str) -> None:
        h = self.h
        timeline = h.stored[chat]
        for e in timeline:
            if (chat, e.seq) in self.stored_at:
                self.duplicated += 1
                self.note(f"the store has {chat}#{e.seq} twice")
            self.stored_at[(chat, e.seq)] = e
        erased = {e.target for e in timeline if e.kind == "delete"}
        mine = [c for c in h.changes.values() if c.chat == chat]
        waiting: dict[Signature, list[Change]] = defaultdict(list)
        for c in mine:
            if c.outcome is Outcome.INDETERMINATE:
                waiting[_signature(c.kind, c.user, c.target, c.emoji)].append(c)
        made = {_signature(c.kind, c.user, c.target, c.emoji) for c in mine
                if c.outcome is Outcome.OK}
        refused = {_signature(c.kind, c.user, c.target, c.emoji): c for c in mine
                   if c.outcome is Outcome.FAILED}
        joined: set[int | None] = set()
        for e in timeline:
            if e.kind == "message":
                if e.client_id is not None:
                    self.placed[(chat, e.client_id)].add(e.seq)
                self.judge_message(chat, e, "stored")
            elif e.kind in CHANGES:
                sig = _signature(e.kind, e.user, e.target, e.emoji)
                if not self.place(chat, e, erased, waiting.get(sig, [])):
                    if sig in made or (e.kind == "delete" and e.target in self.deleted(chat)):
                        self.duplicated += 1
                        self.note(f"stored {chat}#{e.seq}: {e.kind} of #{e.target} by "
                                  f"{e.user} made twice")
                    elif sig in refused:
                        self.unexpected(chat, e, "stored",
                                        f"its change failed ({refused[sig].error})")
                    else:
                        self.unexpected(chat, e, "stored", "nobody made this change")
            elif e.kind in ("join", "leave"):
                self.membership(chat, e, joined)
            else:
                self.unexpected(chat, e, "stored", "an event of a kind nobody made")
        for user, creator in h.joins.get(chat, {}).items():
            if not creator and user not in joined:
                self.lost += 1
                self.note(f"user {user} joined {chat}: no join event in the store")
        for seq in self.acked_in.get(chat, []):
            op = self.acked[(chat, seq)]
            there = self.stored_at.get((chat, seq))
            if there is None or there.id != op.id or there.kind != _kind(op):
                self.lost += 1
                self.note(f"{_name(op)} acknowledged as {chat}#{seq}, not in the store")

    def deleted(self, chat: str) -> set[int | None]:
        return {c.target for (c_chat, _), c in self.landed.items()
                if c_chat == chat and c.kind == "delete"}

    def place(self, chat: str, e: Entry, erased: set[int | None], waiting: list[Change],
              ) -> bool:
        """Match a stored change event to the change that made it; False if none did."""
        op = self.acked.get((chat, e.seq))
        if op is not None:
            if isinstance(op, Change) and op.id == e.id:
                why = _differs(op, e, erased=op.target in erased)
                if why is None:
                    self.landed[(chat, e.seq)] = op
                else:
                    self.unexpected(chat, e, "stored", f"{why}, acknowledged as {_name(op)}")
            else:
                self.unexpected(chat, e, "stored", f"acknowledged as {_name(op)}")
            return True
        for c in waiting:  # an indeterminate change that was done after all
            if c.kind == "edit" and e.text != c.text and not (e.text == ""
                                                              and c.target in erased):
                continue
            waiting.remove(c)
            self.landed[(chat, e.seq)] = c
            return True
        return False

    def membership(self, chat: str, e: Entry, joined: set[int | None]) -> None:
        joins = self.h.joins.get(chat, {})
        if e.kind == "leave":
            self.unexpected(chat, e, "stored", "nobody left")
        elif e.user in joined:
            self.duplicated += 1
            self.note(f"stored {chat}#{e.seq}: user {e.user} joined twice")
        else:
            joined.add(e.user)
            if e.user not in joins:
                self.unexpected(chat, e, "stored", f"user {e.user} never joined")
            elif joins[e.user]:
                self.unexpected(chat, e, "stored", "creating a chat makes no join event")

    def judge_message(self, chat: str, e: Entry, where: str) -> None:
        send = self.h.sends.get(e.client_id) if e.client_id is not None else None
        if send is None or send.chat != chat:
            why = f"never sent (client_id {e.client_id})"
        elif send.outcome is Outcome.FAILED:
            why = f"its send failed ({send.error})"
        elif send.outcome is Outcome.OK and (send.seq, send.id) != (e.seq, e.id):
            why = f"acknowledged as #{send.seq} id {send.id}"
        else:
            stored = self.stored_at.get((chat, e.seq))
            if chat not in self.h.stored or (stored is not None and stored.id == e.id
                                             and stored.kind == "message"):
                return
            why = "not so in the store"
        self.unexpected(chat, e, where, why)

    def judge_event(self, chat: str, e: Entry, where: str) -> None:
        if chat in self.h.stored:
            s = self.stored_at.get((chat, e.seq))
            if s is None or (s.id, s.kind) != (e.id, e.kind):
                self.unexpected(chat, e, where, "not so in the store")
            return
        op = self.acked.get((chat, e.seq))
        if op is not None and (op.id, _kind(op)) != (e.id, e.kind):
            self.unexpected(chat, e, where, f"acknowledged as {_name(op)}")

    # -- what the clients got -----------------------------------------------------------------

    def receipts(self) -> None:
        for r in self.h.receipts:
            self.streams[(r.client, r.chat)].append(r.entry)
        for (client, chat), stream in self.streams.items():
            following = (client, chat) in self.h.follows
            highest = self.h.follows.get((client, chat), 0)
            seen: set[int] = set()
            for e in stream:
                if e.kind == "message":
                    self.judge_message(chat, e, f"{client} got")
                    if e.client_id is not None:
                        self.placed[(chat, e.client_id)].add(e.seq)
                else:
                    self.judge_event(chat, e, f"{client} got")
                if e.seq in seen:
                    self.duplicated += 1
                    self.note(f"{client} got {chat}#{e.seq} twice")
                    continue
                seen.add(e.seq)
                if e.seq < highest:
                    self.reordered += 1
                    self.note(f"{client} got {chat}#{e.seq} after #{highest}")
                elif e.seq > highest + 1 and following:
                    self.gaps += 1
                    self.note(f"{client} jumped from {chat}#{highest} to #{e.seq}")
                highest = max(highest, e.seq)

    def followers(self) -> None:
        """Every follower has every acknowledged seq past its start, up to the end."""
        for (client, chat), base in self.h.follows.items():
            got = {e.seq for e in self.streams.get((client, chat), [])}
            for seq in self.acked_in.get(chat, []):
                if seq > base and seq not in got:
                    self.lost += 1
                    self.note(f"{client} never got {chat}#{seq} "
                              f"({_name(self.acked[(chat, seq)])}, acked)")
            last = max([e.seq for e in self.h.stored.get(chat, [])]
                       + self.acked_in.get(chat, []), default=0)
            highest = max(got, default=base)
            if highest < last:
                self.gaps += 1
                self.note(f"{client} stopped at {chat}#{highest}; the chat ends at #{last}")

    # -- the final state of every message ----------------------------------------------------------

    def model(self, chat: str) -> Replica:
        """The chat as the acknowledged operations (and the done indeterminate ones) make it."""
        entries: dict[int, Entry] = {}
        for e in self.h.stored.get(chat, []):
            if e.kind == "message" and (chat, e.seq, e.id) not in self.bad:
                send = self.h.sends.get(e.client_id) if e.client_id is not None else None
                entries[e.seq] = Entry(e.seq, e.id, e.client_id,
                                       text=send.text if send is not None else None)
            elif (chat, e.seq) in self.landed:
                entries[e.seq] = self.landed[(chat, e.seq)].entry(e.seq, e.id)
        for seq in self.acked_in.get(chat, []):  # and those the store lost
            op = self.acked[(chat, seq)]
            assert op.id is not None
            if seq not in entries:
                entries[seq] = (Entry(seq, op.id, op.client_id, text=op.text)
                                if isinstance(op, Send) else op.entry(seq, op.id))
        model = Replica()
        for seq in sorted(entries):
            e = entries[seq]
            model.apply(e)
            stored = self.stored_at.get((chat, seq))
            if (e.kind in ("react", "unreact") and e.target is not None and e.target in model
                    and e.emoji is not None
                    and stored is not None and stored.count is not None
                    and stored.count != model.count(e.target, e.emoji)):
                self.wrong += 1
                self.note(f"stored {chat}#{seq} ({e.kind} {e.emoji}) has count "
                          f"{stored.count}, not {model.count(e.target, e.emoji)}")
        return model

    def states(self, chat: str) -> set[tuple[str, int]]:
        """Compare the store's and each follower's messages to the model; the deleted ones."""
        model = self.model(chat)
        expected: dict[int, MessageState] = {}
        for seq in model.seqs():
            built = model.state(seq)
            assert built is not None
            expected[seq] = built[0]
        states = self.h.states.get(chat)
        if states is not None:
            for seq, want in expected.items():
                got = states.get(seq)
                if got is None:
                    if (chat, seq) in self.stored_at:
                        self.wrong += 1
                        self.note(f"{chat}#{seq} is in the store's timeline, not in its messages")
                    continue  # else a lost send, counted as lost
                why = want.mismatch(got)
                if why is not None:
                    self.wrong += 1
                    self.note(f"the store has {chat}#{seq} {why}")
            for seq in states.keys() - expected.keys():
                if (chat, seq) not in self.stored_at:
                    self.wrong += 1
                    self.note(f"the store's messages have {chat}#{seq}, its timeline does not")
        for (client, c), base in self.h.follows.items():
            if c != chat:
                continue
            replica = Replica()
            for e in self.streams.get((client, chat), []):
                replica.apply(e)
            for seq, want in expected.items():
                built = replica.state(seq) if seq > base else None
                if built is None:
                    continue  # never got it: lost or gaps say so
                why = want.mismatch(*built)
                if why is not None:
                    self.wrong += 1
                    self.note(f"{client} built {chat}#{seq} {why}")
        return {(chat, seq) for seq, s in expected.items() if s.deleted}

    def nothing_to_do(self, deleted: set[tuple[str, int]]) -> None:
        """A react (unreact) acknowledged with no event must find the reaction there (not
        there), as far as that client's own earlier changes of it tell (made one at a time)."""
        known: dict[tuple[str, int, int, str | None], bool | None] = {}
        for c in self.h.changes.values():
            if c.kind not in ("react", "unreact") or (c.chat, c.target) in deleted:
                continue
            key, want = (c.chat, c.user, c.target, c.emoji), c.kind == "react"
            if c.outcome is Outcome.OK and c.event is None:
                was = known.get(key, False)
                if was is not None and was != want:
                    self.wrong += 1
                    self.note(f"{_name(c)} {c.emoji}: acknowledged as nothing to do, yet "
                              f"the reaction was {'there' if was else 'not there'}")
                known[key] = want
            elif c.outcome is Outcome.OK:
                known[key] = want
            elif c.outcome is Outcome.INDETERMINATE:
                known[key] = None
