"""A Jepsen-style history of sends and receipts, and the checker of PROTOCOL.md's guarantees.

Each send is one operation, named by its ``client_id`` (unique in a history), that ends
``ok`` (acknowledged with a seq and an id), ``failed`` (refused: certainly not stored)
or ``indeterminate`` (no answer, or ``unavailable``: it may or may not be stored).
Each receipt is ``(client, chat, seq, id, client_id)`` in the order the client got it.
A follower is a client that stayed subscribed to a chat from a seq on (resuming with
``after`` whenever it reconnected). The checker counts five kinds of anomaly:

- lost: an acknowledged message a follower should have had and never got (or that the
  store does not hold);
- duplicated: a message a follower got twice, or one send stored twice;
- unexpected: a message received or stored that nobody sent, that contradicts its
  acknowledgement, or whose send was refused;
- gaps: a follower's stream jumping over a seq, or ending short of the chat's last seq;
- reordered: a follower getting a seq lower than one it already had.

A correct run has all five at zero. An indeterminate send may be absent, or present
once; a failed one must be absent.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from enum import Enum

import attrs

#: Error codes after which a send is certainly not stored.
DEFINITE_FAILURES = frozenset({"invalid", "forbidden", "not_found", "rate_limited",
                               "unauthenticated", "too_large", "conflict"})


class Outcome(Enum):
    """How a send ended, as its sender knows it."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    INDETERMINATE = "indeterminate"


@attrs.define
class Send:
    """One logical send (its retries share the client_id); the last word on it."""

    client: str
    chat: str
    client_id: str
    outcome: Outcome = Outcome.PENDING
    seq: int | None = None
    id: int | None = None
    attempts: int = 0
    error: str | None = None


@attrs.frozen
class Receipt:
    """One message frame a client got."""

    client: str
    chat: str
    seq: int
    id: int
    client_id: str | None


@attrs.frozen
class Stored:
    """One message as the store holds it at the end of a run."""

    seq: int
    id: int
    client_id: str | None


@attrs.frozen
class Report:
    """The checker's verdict: five counts (all 0 for a correct run) and some figures."""

    lost: int
    duplicated: int
    unexpected: int
    gaps: int
    reordered: int
    sends: int
    ok: int
    failed: int
    indeterminate: int
    receipts: int
    details: tuple[str, ...] = ()

    @property
    def anomalies(self) -> dict[str, int]:
        return {"lost": self.lost, "duplicated": self.duplicated,
                "unexpected": self.unexpected, "gaps": self.gaps, "reordered": self.reordered}

    @property
    def clean(self) -> bool:
        return not any(self.anomalies.values())

    def summary(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.anomalies.items())
        return (f"{counts} | sends={self.sends} ok={self.ok} failed={self.failed} "
                f"indeterminate={self.indeterminate} receipts={self.receipts}")


class History:
    """What happened in a run, recorded as it happens; ``check()`` judges it."""

    def __init__(self, max_details: int = 20) -> None:
        self.sends: dict[str, Send] = {}
        self.receipts: list[Receipt] = []
        self.follows: dict[tuple[str, str], int] = {}
        self.stored: dict[str, list[Stored]] = {}
        self._max_details = max_details

    # -- recording ---------------------------------------------------------------

    def invoke(self, client: str, chat: str, client_id: str) -> Send:
        """A send is about to go out (the first attempt)."""
        if client_id in self.sends:
            raise ValueError(f"client_id {client_id!r} used twice in one history")
        send = self.sends[client_id] = Send(client, chat, client_id)
        return send

    def attempt(self, client_id: str) -> None:
        """One more try of a send (the same client_id: a retry)."""
        self.sends[client_id].attempts += 1

    def ok(self, client_id: str, seq: int, id: int) -> None:
        """The send was acknowledged (201/200, or ``sent``) with this seq and id."""
        send = self.sends[client_id]
        send.outcome, send.seq, send.id = Outcome.OK, seq, id

    def fail(self, client_id: str, code: str) -> None:
        """The send was refused: failed if ``code`` is definite, else indeterminate."""
        send = self.sends[client_id]
        if send.outcome is Outcome.OK:
            return  # an earlier attempt was acknowledged: that stands
        send.error = code
        if code in DEFINITE_FAILURES and send.outcome is not Outcome.INDETERMINATE:
            send.outcome = Outcome.FAILED
        else:
            send.outcome = Outcome.INDETERMINATE

    def unknown(self, client_id: str) -> None:
        """No answer came (connection lost, time out): the send may be stored or not."""
        send = self.sends[client_id]
        if send.outcome is not Outcome.OK:
            send.outcome = Outcome.INDETERMINATE

    def receive(self, client: str, chat: str, seq: int, id: int,
                client_id: str | None) -> None:
        self.receipts.append(Receipt(client, chat, seq, id, client_id))

    def follow(self, client: str, chat: str, after: int) -> None:
        """``client`` follows ``chat`` from ``after`` on, for the whole run."""
        self.follows.setdefault((client, chat), after)

    def store(self, chat: str, messages: Iterable[Stored]) -> None:
        """What the store holds for a chat at the end of the run."""
        self.stored[chat] = sorted(messages, key=lambda m: m.seq)

    # -- checking ---------------------------------------------------------------------

    def check(self) -> Report:
        details: list[str] = []

        def note(text: str) -> None:
            if len(details) < self._max_details:
                details.append(text)

        sends = list(self.sends.values())
        for send in sends:
            if send.outcome is Outcome.PENDING:
                send.outcome = Outcome.INDETERMINATE
        by_client_id = self.sends
        stored_at: dict[tuple[str, int], Stored] = {}
        lost = duplicated = gaps = reordered = 0
        # Messages (chat, seq, id) received or stored that should not exist as they are.
        bad: set[tuple[str, int, int]] = set()
        # The seqs at which each send (chat, client_id) was seen, received or stored.
        placed: dict[tuple[str, str], set[int]] = defaultdict(set)

        acked: dict[tuple[str, int], Send] = {}
        acked_in: dict[str, list[Send]] = defaultdict(list)
        for send in sends:
            if send.outcome is not Outcome.OK:
                continue
            assert send.seq is not None and send.id is not None
            other = acked.get((send.chat, send.seq))
            if other is not None:  # two sends acknowledged with one seq
                bad.add((send.chat, send.seq, send.id))
                note(f"{send.client_id} and {other.client_id} both acked as "
                     f"{send.chat}#{send.seq}")
                continue
            acked[(send.chat, send.seq)] = send
            acked_in[send.chat].append(send)

        def judge(chat: str, seq: int, id: int, client_id: str | None, where: str) -> None:
            send = by_client_id.get(client_id) if client_id is not None else None
            if send is None or send.chat != chat:
                why = f"never sent (client_id {client_id})"
            elif send.outcome is Outcome.FAILED:
                why = f"its send failed ({send.error})"
            elif send.outcome is Outcome.OK and (send.seq, send.id) != (seq, id):
                why = f"acknowledged as #{send.seq} id {send.id}"
            else:
                stored = stored_at.get((chat, seq))
                if chat not in self.stored or (stored is not None and stored.id == id):
                    return
                why = "not so in the store"
            if (chat, seq, id) not in bad:
                bad.add((chat, seq, id))
                note(f"{where} {chat}#{seq} id {id}: {why}")

        # The store: every acknowledged message in it, no send twice, nothing foreign.
        for chat, messages in self.stored.items():
            for m in messages:
                stored_at[(chat, m.seq)] = m
        for chat, messages in self.stored.items():
            for m in messages:
                if m.client_id is not None:
                    placed[(chat, m.client_id)].add(m.seq)
                judge(chat, m.seq, m.id, m.client_id, "stored")
        for (chat, seq), send in acked.items():
            if chat in self.stored:
                m = stored_at.get((chat, seq))
                if m is None or m.id != send.id:
                    lost += 1
                    note(f"{send.client_id} acknowledged as {chat}#{seq}, not in the store")

        # What each client got, in its order.
        streams: dict[tuple[str, str], list[Receipt]] = defaultdict(list)
        for receipt in self.receipts:
            streams[(receipt.client, receipt.chat)].append(receipt)
        for (client, chat), stream in streams.items():
            following = (client, chat) in self.follows
            highest = self.follows.get((client, chat), 0)
            seen: set[int] = set()
            for r in stream:
                judge(chat, r.seq, r.id, r.client_id, f"{client} got")
                if r.client_id is not None:
                    placed[(chat, r.client_id)].add(r.seq)
                if r.seq in seen:
                    duplicated += 1
                    note(f"{client} got {chat}#{r.seq} twice")
                    continue
                seen.add(r.seq)
                if r.seq < highest:
                    reordered += 1
                    note(f"{client} got {chat}#{r.seq} after #{highest}")
                elif r.seq > highest + 1 and following:
                    gaps += 1
                    note(f"{client} jumped from {chat}#{highest} to #{r.seq}")
                highest = max(highest, r.seq)
        unexpected = len(bad)
        for (chat, client_id), seqs in placed.items():
            if len(seqs) > 1:  # one send stored under two seqs
                duplicated += len(seqs) - 1
                note(f"{client_id} appears as {chat}#{sorted(seqs)}")

        # Every follower has every acknowledged message past its start, up to the end.
        for (client, chat), base in self.follows.items():
            got = {r.seq for r in streams.get((client, chat), [])}
            for send in acked_in.get(chat, []):
                assert send.seq is not None
                if send.seq > base and send.seq not in got:
                    lost += 1
                    note(f"{client} never got {chat}#{send.seq} ({send.client_id}, acked)")
            last = max([m.seq for m in self.stored.get(chat, [])]
                       + [s.seq or 0 for s in acked_in.get(chat, [])], default=0)
            highest = max(got, default=base)
            if highest < last:
                gaps += 1
                note(f"{client} stopped at {chat}#{highest}; the chat ends at #{last}")

        outcomes = Counter(s.outcome for s in sends)
        return Report(lost=lost, duplicated=duplicated, unexpected=unexpected, gaps=gaps,
                      reordered=reordered, sends=len(sends), ok=outcomes[Outcome.OK],
                      failed=outcomes[Outcome.FAILED],
                      indeterminate=outcomes[Outcome.INDETERMINATE],
                      receipts=len(self.receipts), details=tuple(details))
