"""The checker on hand-made timelines: edits, deletes, reactions and joins take seqs.

A clean history passes, whether a follower got every frame live or resumed and got
messages replayed in their current state; each wrong final state (a lost edit, a
resurrected delete, a missing reaction), in the store or as a follower built it, fails.
"""

from __future__ import annotations

from typing import Any

import attrs

from tests.reliability.history import History, Outcome
from tests.reliability.timeline import Entry, MessageState, Reaction

W, R = 1, 2  # the writer (the chat's creator) and a reactor
T = "2026-01-01T00:00:00Z"
THUMB = "\U0001f44d"


def user(id: int) -> dict[str, Any]:
    return {"id": id, "username": f"u{id}", "display_name": f"u{id}"}


def msg(seq: int, client_id: str, text: str, *, deleted: bool = False,
        edited: bool = False, reactions: tuple[tuple[str, int, list[int]], ...] = (),
        ) -> dict[str, Any]:
    """A message frame as the server sends it."""
    return {"type": "message", "chat": "c", "seq": seq, "id": 100 + seq, "user": user(W),
            "message": "" if deleted else text, "client_id": client_id, "created_at": T,
            "reply_to": None, "edited_at": T if edited else None, "deleted": deleted,
            "reactions": [{"emoji": e, "count": n, "users": u} for e, n, u in reactions]}


def ev(seq: int, kind: str, by: int, **fields: Any) -> dict[str, Any]:
    """An event frame as the server sends it."""
    return {"type": "event", "chat": "c", "seq": seq, "id": 100 + seq, "kind": kind,
            "user": user(by), "created_at": T, **fields}


# The timeline of chat "c": R joins; W posts two messages, edits the first twice and
# deletes the second; R and W react to the first, R takes his reaction back.
TIMELINE = [
    ev(1, "join", R),
    msg(2, "w-1", "hello"),
    msg(3, "w-2", "second"),
    ev(4, "edit", W, target=2, message="hello again", edited_at=T),
    ev(5, "react", R, target=2, emoji=THUMB, count=1),
    ev(6, "react", W, target=2, emoji=THUMB, count=2),
    ev(7, "delete", W, target=3),
    ev(8, "unreact", R, target=2, emoji=THUMB, count=1),
    ev(9, "edit", W, target=2, message="hello, final", edited_at=T),
]
FINAL = {2: msg(2, "w-1", "hello, final", edited=True, reactions=((THUMB, 1, [W]),)),
         3: msg(3, "w-2", "second", deleted=True)}
CHANGES = [  # (client, user, kind, target, text, emoji, seq of its event)
    ("w", W, "edit", 2, "hello again", None, 4),
    ("r", R, "react", 2, None, THUMB, 5),
    ("w", W, "react", 2, None, THUMB, 6),
    ("w", W, "delete", 3, None, None, 7),
    ("r", R, "unreact", 2, None, THUMB, 8),
    ("w", W, "edit", 2, "hello, final", None, 9),
]


def stored(frame: dict[str, Any]) -> Entry:
    """An entry of GET events: a delete erased the text of the message and its edits."""
    e = Entry.parse(frame)
    if e.seq == 3:
        return attrs.evolve(e, text="", state=MessageState("", deleted=True))
    return e


def run(*, live: list[dict[str, Any]] | None = None,
        replayed: list[dict[str, Any]] | None = None,
        timeline: list[dict[str, Any]] | None = None,
        final: dict[int, dict[str, Any]] | None = None) -> History:
    """A clean history unless told otherwise: "live" got every frame as it happened;
    "late" was cut off after the join and resumed, so its messages came replayed in
    their current state, then the events; the store holds the timeline and FINAL."""
    h = History()
    h.joined("c", W, creator=True)
    h.joined("c", W)  # the creator joining again is no join
    h.joined("c", R)
    h.follow("live", "c", 0)
    h.follow("late", "c", 0)
    h.invoke("w", "c", "w-1", text="hello")
    h.ok("w-1", 2, 102)
    h.invoke("w", "c", "w-2", text="second")
    h.ok("w-2", 3, 103)
    for client, by, kind, target, text, emoji, seq in CHANGES:
        c = h.change(client, by, "c", kind, target, text=text, emoji=emoji)
        h.applied(c.key, TIMELINE[seq - 1])
    for frame in live if live is not None else TIMELINE:
        h.receive_frame("live", frame)
    for frame in replayed if replayed is not None else [TIMELINE[0], *FINAL.values(),
                                                         *TIMELINE[3:]]:
        h.receive_frame("late", frame)
    final = FINAL if final is None else final
    h.store("c", [stored(f) for f in (timeline if timeline is not None else TIMELINE)],
            {seq: MessageState.parse(m) for seq, m in final.items()})
    return h


def test_a_clean_timeline_live_and_replayed() -> None:
    report = run().check()
    assert report.clean, report.details
    assert (report.sends, report.ok, report.changes, report.changes_ok) == (2, 2, 6, 6)


def test_a_lost_edit() -> None:
    # in the store: the timeline has the last edit, the message does not
    report = run(final={**FINAL, 2: msg(2, "w-1", "hello again", edited=True,
                                        reactions=((THUMB, 1, [W]),))}).check()
    assert report.wrong == 1 and not report.clean, report.details
    assert "hello again" in report.details[0]
    # the store lost it altogether: lost from the timeline, and the text is wrong
    report = run(timeline=TIMELINE[:8], final={**FINAL, 2: msg(
        2, "w-1", "hello again", edited=True, reactions=((THUMB, 1, [W]),))}).check()
    assert report.lost == 1 and report.wrong == 1, report.details
    # a follower applied an edit event with another text (and so built another message)
    bad = [*TIMELINE[:8], ev(9, "edit", W, target=2, message="hello", edited_at=T)]
    report = run(live=bad).check()
    assert report.wrong == 1 and report.unexpected == 0, report.details
    assert report.details[0].startswith("live built c#2")


def test_a_resurrected_delete() -> None:
    report = run(final={**FINAL, 3: msg(3, "w-2", "second")}).check()
    assert report.wrong == 1, report.details
    assert report.details[0] == "the store has c#3 not deleted"
    # deleted, yet its text is still there
    shown = {**msg(3, "w-2", "second", deleted=True), "message": "second"}
    assert run(final={**FINAL, 3: shown}).check().wrong == 1
    # a follower that resumed got the message replayed as it was before the delete, and
    # no delete event after it
    replayed = [TIMELINE[0], FINAL[2], msg(3, "w-2", "second"), *TIMELINE[3:6],
                *TIMELINE[7:]]
    report = run(replayed=replayed).check()
    assert (report.wrong, report.lost, report.gaps) == (1, 1, 1), report.details
    assert "late built c#3 not deleted" in report.details


def test_a_missing_reaction() -> None:
    report = run(final={**FINAL, 2: msg(2, "w-1", "hello, final", edited=True)}).check()
    assert report.wrong == 1, report.details
    # or the count is right and the users are not
    report = run(final={**FINAL, 2: msg(2, "w-1", "hello, final", edited=True,
                                        reactions=((THUMB, 1, [R]),))}).check()
    assert report.wrong == 1, report.details
    # a follower missed R's unreact: lost, a gap, and it ends with R's reaction
    report = run(live=[f for f in TIMELINE if f["seq"] != 8]).check()
    assert (report.lost, report.gaps, report.wrong) == (1, 1, 1), report.details


def test_counts_of_stored_events() -> None:
    bad = [*TIMELINE[:7], ev(8, "unreact", R, target=2, emoji=THUMB, count=2), TIMELINE[8]]
    report = run(timeline=bad).check()
    assert report.wrong == 1 and "count 2, not 1" in report.details[0], report.details


def test_indeterminate_changes_count_as_done_when_the_store_has_them() -> None:
    h = run()
    maybe = h.change("w", W, "c", "edit", 2, text="maybe")
    h.unknown(maybe.key)  # no answer; it was done, as #10
    h.receive_frame("live", ev(10, "edit", W, target=2, message="maybe", edited_at=T))
    h.receive_frame("late", ev(10, "edit", W, target=2, message="maybe", edited_at=T))
    h.store("c", [*h.stored["c"], Entry.parse(ev(10, "edit", W, target=2, message="maybe"))],
            {**h.states["c"], 2: MessageState("maybe", edited=True,
                                              reactions=(Reaction(THUMB, 1, frozenset({W})),))})
    never = h.change("r", R, "c", "react", 2, emoji="ok")
    h.fail(never.key, "unavailable")  # maybe done: it was not
    report = h.check()
    assert report.clean, report.details
    assert (report.changes_ok, report.changes_indeterminate) == (6, 2)


def test_a_change_that_failed_or_nobody_made_or_made_twice() -> None:
    h = run()
    refused = h.change("r", R, "c", "edit", 2, text="not mine")
    h.fail(refused.key, "forbidden")
    extra = ev(10, "edit", R, target=2, message="not mine", edited_at=T)
    for client in ("live", "late"):
        h.receive_frame(client, extra)
    h.store("c", [*h.stored["c"], Entry.parse(extra)],
            {**h.states["c"], 2: MessageState.parse({**FINAL[2], "message": "not mine"})})
    report = h.check()
    assert report.unexpected == 1 and "failed (forbidden)" in report.details[0]
    assert report.wrong == 3  # the store's message and both followers' are not as acked
    twice = [*TIMELINE, ev(10, "delete", W, target=3)]
    report = run(live=twice, replayed=[TIMELINE[0], *FINAL.values(), *twice[3:]],
                 timeline=twice).check()
    assert report.duplicated == 1 and report.wrong == 0, report.details
    foreign = [*TIMELINE, ev(10, "react", R, target=2, emoji="ok", count=1)]
    report = run(live=foreign, replayed=[TIMELINE[0], *FINAL.values(), *foreign[3:]],
                 timeline=foreign).check()
    assert report.unexpected == 1 and "nobody made" in report.details[0]


def test_an_acknowledgement_that_is_not_the_change() -> None:
    h = History()
    c = h.change("w", W, "c", "edit", 2, text="new")
    h.applied(c.key, ev(4, "edit", W, target=3, message="new", edited_at=T))
    assert h.check().unexpected == 1


def test_gaps_duplicates_and_reordering_count_every_kind() -> None:
    report = run(live=[f for f in TIMELINE if f["seq"] != 5]).check()
    assert report.gaps == 1 and report.lost == 1  # R's react, acknowledged, never came
    report = run(live=[*TIMELINE[:6], TIMELINE[4], *TIMELINE[6:]]).check()
    assert report.duplicated == 1 and report.wrong == 0  # applied twice: no harm
    report = run(live=[*TIMELINE[:4], TIMELINE[5], TIMELINE[4], *TIMELINE[6:]]).check()
    assert report.reordered == 1 and report.gaps == 1
    report = run(live=TIMELINE[1:]).check()  # the join event is a seq like any other
    assert report.gaps == 1 and report.lost == 0


def test_joins_take_seqs() -> None:
    report = run(timeline=TIMELINE[1:], live=TIMELINE[1:], replayed=list(FINAL.values())
                 + TIMELINE[3:]).check()
    assert report.lost == 1 and "no join event" in report.details[0]
    creator = [ev(1, "join", W), *TIMELINE[1:]]
    report = run(timeline=creator, live=creator).check()
    assert report.unexpected == 1 and "no join event" in report.details[0]
    assert report.lost == 1  # and R's join is missing


def test_acknowledged_as_nothing_to_do() -> None:
    h = run()
    again = h.change("r", R, "c", "react", 2, emoji=THUMB)  # R took it back at #8
    h.applied(again.key, None)
    report = h.check()
    assert report.wrong == 1 and "not there" in report.details[0]
    h = run()
    again = h.change("w", W, "c", "react", 2, emoji=THUMB)  # W's is there: fine
    h.applied(again.key, None)
    gone = h.change("r", R, "c", "unreact", 2, emoji=THUMB)
    h.applied(gone.key, None)
    report = h.check()
    assert report.clean, report.details
    assert h.changes[gone.key].outcome is Outcome.OK


def test_more_reactors_than_a_frame_lists() -> None:
    many = list(range(10, 22))  # twelve reactors; frames list the first ten
    h = History()
    h.follow("f", "c", 0)
    h.invoke("w", "c", "w-1", text="hi")
    h.ok("w-1", 1, 101)
    frames = [msg(1, "w-1", "hi")]
    for i, u in enumerate(many):
        c = h.change(f"u{u}", u, "c", "react", 1, emoji=THUMB)
        frames.append(ev(2 + i, "react", u, target=1, emoji=THUMB, count=i + 1))
        h.applied(c.key, frames[-1])
    c = h.change("u10", 10, "c", "unreact", 1, emoji=THUMB)  # one of the listed ten
    frames.append(ev(14, "unreact", 10, target=1, emoji=THUMB, count=11))
    h.applied(c.key, frames[-1])
    shown = msg(1, "w-1", "hi", reactions=((THUMB, 12, many[:10]),))
    h.receive_frame("f", shown)  # replayed while twelve had reacted, then the events
    for frame in frames[1:]:
        h.receive_frame("f", frame)
    final = msg(1, "w-1", "hi", reactions=((THUMB, 11, many[1:11]),))
    h.store("c", [Entry.parse(f) for f in frames], {1: MessageState.parse(final)})
    report = h.check()
    assert report.clean, report.details
    h.states["c"][1] = MessageState.parse(msg(1, "w-1", "hi",
                                              reactions=((THUMB, 11, [*many[1:10], 99]),)))
    report = h.check()
    assert report.wrong == 1 and "99" in report.details[0], report.details


def test_a_delete_takes_the_reactions_with_it() -> None:
    h = History()
    h.follow("live", "c", 0)
    h.follow("late", "c", 0)
    h.invoke("w", "c", "w-1", text="hi")
    h.ok("w-1", 1, 101)
    frames = [msg(1, "w-1", "hi"), ev(2, "react", R, target=1, emoji=THUMB, count=1),
              ev(3, "delete", W, target=1)]
    h.applied(h.change("r", R, "c", "react", 1, emoji=THUMB).key, frames[1])
    h.applied(h.change("w", W, "c", "delete", 1).key, frames[2])
    gone = msg(1, "w-1", "hi", deleted=True)
    for frame in frames:
        h.receive_frame("live", frame)
    for frame in [gone, *frames[1:]]:  # replayed: deleted, then its react, then the delete
        h.receive_frame("late", frame)
    h.store("c", [Entry.parse(f) for f in frames], {1: MessageState.parse(gone)})
    report = h.check()
    assert report.clean, report.details
    h.states["c"][1] = MessageState.parse(msg(1, "w-1", "hi", deleted=True,
                                              reactions=((THUMB, 1, [R]),)))
    assert h.check().wrong == 1
