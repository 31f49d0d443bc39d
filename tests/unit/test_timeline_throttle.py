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
