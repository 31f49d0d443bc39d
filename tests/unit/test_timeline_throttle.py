"""At most ``max_in_flight`` timeline changes hold a store connection at once; the rest wait
their turn and then go through (the appender's group commits keep the other connections)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from chatire.bus.memory import MemoryBroker
from chatire.model import Event
from chatire.timeline import TimelineService
from tests.unit.harness import Node, run


class _Gated:
    """The real store, its edits held at the door until let through (to see how many
    the service has at the store at once)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.waiting: list[Deferred[None]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def edit_asked(self, ask: Any, text: str) -> Deferred[Event]:
        door: Deferred[None] = Deferred()
        self.waiting.append(door)
        return door.addCallback(lambda _: self._store.edit_asked(ask, text))


def test_no_more_than_two_changes_reach_the_store_at_once_and_the_rest_follow() -> None:
    clock = Clock()
    node = Node(clock, MemoryBroker())
    alice = node.user("alice")
    chat = node.chat(alice)
    token, _ = run(node.chats.sign_in("alice", "correct horse", "192.0.2.1"))
    seqs = [run(node.chats.post(alice, chat.uri, f"m{i}", None))[0].seq for i in range(5)]
    gated = _Gated(node.store)
    timeline = TimelineService(node.chats, gated, clock, max_in_flight=2)  # type: ignore[arg-type]
    edits = [Deferred.fromCoroutine(timeline.edit(token, chat.uri, seq, f"edited {seq}"))
             for seq in seqs]
    assert len(gated.waiting) == 2  # two at the store, three waiting in the service
    for _ in range(len(seqs)):
        gated.waiting.pop(0).callback(None)
        assert len(gated.waiting) <= 2
    assert gated.waiting == []
    done = [run(_wait(d)) for d in edits]
    assert [e.seq for e in done] == sorted(e.seq for e in done) and len(done) == 5


async def _wait(d: Deferred[Event]) -> Event:
    return await d


def test_one_sign_in_s_burst_is_refused_past_its_share_and_others_still_get_in() -> None:
    """The attacker's test: a client firing changes without waiting for answers has at most
    --max-pending-changes waiting or at the store; the rest get 429 at once (nothing queued,
    nothing stored), and another user's change takes its turn behind that share only."""
    from chatire.errors import RateLimited

    clock = Clock()
    node = Node(clock, MemoryBroker())
    MAX_PENDING_CHANGES = node.chats.config.max_pending_changes  # noqa: N806
    assert MAX_PENDING_CHANGES == 8  # the default
    alice, bob = node.user("alice"), node.user("bob")
    chat = node.chat(alice, bob)
    token, _ = run(node.chats.sign_in("alice", "correct horse", "192.0.2.1"))
    bob_token, _ = run(node.chats.sign_in("bob", "correct horse", "192.0.2.2"))
    seq = run(node.chats.post(alice, chat.uri, "hello", None))[0].seq
    bob_seq = run(node.chats.post(bob, chat.uri, "hi", None))[0].seq
    gated = _Gated(node.store)
    timeline = TimelineService(node.chats, gated, clock, max_in_flight=2)  # type: ignore[arg-type]
    burst = [Deferred.fromCoroutine(timeline.edit(token, chat.uri, seq, f"edit {i}"))
             for i in range(MAX_PENDING_CHANGES + 5)]
    refused: list[Any] = []
    for d in burst[MAX_PENDING_CHANGES:]:
        d.addErrback(lambda f: refused.append(f.trap(RateLimited)))
    assert len(refused) == 5  # at once, before any store work
    bobs = Deferred.fromCoroutine(timeline.edit(bob_token, chat.uri, bob_seq, "bob's edit"))
    turns = 0
    while not bobs.called:
        gated.waiting.pop(0).callback(None)
        turns += 1
    assert turns <= MAX_PENDING_CHANGES + 1  # behind alice's share at most, then his own
    assert run(_wait(bobs)).fields["message"] == "bob's edit"
    while gated.waiting:
        gated.waiting.pop(0).callback(None)
    assert all(run(_wait(d)).kind == "edit" for d in burst[:MAX_PENDING_CHANGES])
    # Her share is free again once answered: the next change goes through.
    later = Deferred.fromCoroutine(timeline.edit(token, chat.uri, seq, "later"))
    gated.waiting.pop(0).callback(None)
    assert run(_wait(later)).fields["message"] == "later"
