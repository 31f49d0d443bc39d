"""The benchmark's bulk-written chat (bench/bulk.py) is what the daemon itself would have
stored: read back through the API, replayed, and carried on by the daemon, on both stores."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest_twisted

from bench import bulk
from tests.support.client import Api, User

ENTRIES = 3000


async def _timeline(user: User, uri: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while True:
        after = entries[-1]["seq"] if entries else 0
        status, body = await user.call("GET", f"/api/chats/{uri}/events?after={after}&limit=500")
        assert status == 200, body
        entries += body["events"]
        if not body["has_more"]:
            return entries


def _replay(entries: list[dict[str, Any]], owner: int) -> tuple[set[int], dict[str, Any]]:
    """Check every entry against the rules the daemon enforces; the members at the end
    and what the entries say each message should look like now."""
    members = {owner}
    messages: dict[int, dict[str, Any]] = {}
    deleted: set[int] = set()
    edits: dict[int, dict[str, Any]] = {}
    counts: dict[int, dict[str, int]] = {}
    for entry in entries:
        kind, who = entry["kind"], entry["user"]["id"]
        if kind == "join":
            assert who not in members, entry
            members.add(who)
            continue
        assert who in members, entry  # only members act
        if kind == "leave":
            members.remove(who)
        elif kind == "message":
            assert entry["reply_to"] is None or entry["reply_to"] in messages
            messages[entry["seq"]] = entry
        else:
            target = entry["target"]
            author = messages[target]["user"]["id"]
            assert target not in deleted, entry  # nothing happens to a deleted message
            if kind == "edit":
                assert who == author
                edits[target] = entry
            elif kind == "delete":
                assert who in (author, owner)
                deleted.add(target)
            else:
                counts.setdefault(target, {})[entry["emoji"]] = entry["count"]
    return members, {"messages": messages, "deleted": deleted, "edits": edits,
                     "counts": counts}


@pytest_twisted.ensureDeferred
async def test_a_bulk_written_chat_reads_back_and_goes_on_as_the_daemons_own(
        api: Api, db_url: str) -> None:
    users = [await api.user() for _ in range(5)]
    owner = users[0]
    uri = await owner.new_chat()
    for user in users[1:]:
        await user.join(uri)  # seqs 1..4
    loaded = bulk.load(db_url, uri, ENTRIES)
    assert loaded.checks["gap_free"] and loaded.checks["ids_unique"]
    assert sum(loaded.kinds.values()) == ENTRIES - 4
    assert {"message", "edit", "delete", "react", "unreact", "join", "leave"} <= set(loaded.kinds)

    entries = await _timeline(owner, uri)
    assert [entry["seq"] for entry in entries] == list(range(1, ENTRIES + 1))
    ids = {entry["id"] for entry in entries}
    assert len(ids) == ENTRIES
    members, state = _replay(entries, owner.id)
    assert members == {user.id for user in users}

    # Each message as stored is what its events made of it.
    for seq, message in state["messages"].items():
        reactions = {r["emoji"]: r["count"] for r in message["reactions"]}
        if seq in state["deleted"]:
            assert (message["deleted"], message["message"], reactions) == (True, "", {})
            continue
        edit = state["edits"].get(seq)
        assert message["deleted"] is False
        assert message["edited_at"] == (edit["edited_at"] if edit else None)
        if edit:
            assert message["message"] == edit["message"]
        assert reactions == {emoji: n for emoji, n in state["counts"].get(seq, {}).items() if n}
    for entry in entries:  # a delete erased its message's edits too
        if entry["kind"] == "edit" and entry["target"] in state["deleted"]:
            assert entry["message"] == ""

    # The daemon carries on: the next seq, a fresh id, the reactions table as the events say.
    status, body = await users[1].call("POST", f"/api/chats/{uri}/messages",
                                       {"message": "after the bulk"})
    assert status == 201 and body["message"]["seq"] == ENTRIES + 1
    assert body["message"]["id"] not in ids
    mine = next((m["seq"], r) for m in state["messages"].values() for r in m["reactions"]
                if owner.id in r["users"])
    path = f"/api/chats/{uri}/messages/{mine[0]}/reactions/{quote(mine[1]['emoji'], safe='')}"
    assert (await owner.call("PUT", path))[1] == {"event": None}  # there already
    status, body = await owner.call("DELETE", path)
    assert status == 200
    event = body["event"]
    assert (event["seq"], event["count"]) == (ENTRIES + 2, mine[1]["count"] - 1)
    assert event["id"] not in ids
    status, body = await owner.call("GET", f"/api/chats/{uri}")
    assert status == 200 and body["chat"]["last_seq"] == ENTRIES + 2
