"""An edit, a reaction or a delete over HTTP costs ONE store transaction, the token check,
the membership and author rules and the change in it (issue #15's mixed target); refused
ones too, in the same order of refusals as before."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from tests.support.client import Api

THUMBS = "\N{THUMBS UP SIGN}"
#: What the daemon runs on its own timers, whatever the requests.
BACKGROUND = frozenset({"control_since", "prune_control", "log_control", "touch_seen",
                        "claim_due", "ping", "mark_read"})


def _transactions(daemon: Any) -> Counter[str]:
    """Store transactions the daemon ran, by function (its own metrics)."""
    counts: Counter[str] = Counter()
    for metric in daemon.metrics.store_latency.collect():
        for sample in metric.samples:
            name = sample.labels.get("query")
            if sample.name.endswith("_count") and name not in BACKGROUND:
                counts[name] = int(sample.value)
    return counts


async def _cost(daemon: Any, call: Any) -> tuple[tuple[int, str], dict[str, int]]:
    """The status and error code of a request, and the transactions it took."""
    before = _transactions(daemon)
    status, reply = await call
    after = _transactions(daemon)
    code = (reply or {}).get("error", {}).get("code", "")
    return (status, code), dict(after - before)


@pytest_twisted.ensureDeferred
async def test_each_timeline_change_is_one_transaction(api: Api, daemon: Any) -> None:
    alice, bob, eve = await api.user(), await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    seq = (await bob.post(uri, "hello"))["seq"]
    path = f"/api/chats/{uri}/messages/{seq}"
    thumbs = f"{path}/reactions/{quote(THUMBS, safe='')}"

    assert await _cost(daemon, bob.call("PATCH", path, {"message": "hello!"})) == (
        (200, ""), {"edit_asked": 1})
    assert await _cost(daemon, alice.call("PUT", thumbs)) == ((200, ""), {"react_asked": 1})
    assert await _cost(daemon, alice.call("PUT", thumbs)) == ((200, ""), {"react_asked": 1})
    assert await _cost(daemon, alice.call("DELETE", thumbs)) == ((200, ""), {"react_asked": 1})
    # Refusals by the rules cost the same one transaction.
    assert await _cost(daemon, alice.call("PATCH", path, {"message": "mine"})) == (
        (403, "forbidden"), {"edit_asked": 1})
    assert await _cost(daemon, eve.call("PUT", thumbs)) == ((403, "forbidden"),
                                                            {"react_asked": 1})
    assert await _cost(daemon, eve.call("DELETE", path)) == ((403, "forbidden"),
                                                             {"delete_asked": 1})
    assert await _cost(daemon, bob.call("DELETE", f"/api/chats/{uri}/messages/99")) == (
        (404, "not_found"), {"delete_asked": 1})
    # The owner deletes bob's message; again answers with the first delete event.
    assert await _cost(daemon, alice.call("DELETE", path)) == ((200, ""), {"delete_asked": 1})
    assert await _cost(daemon, bob.call("DELETE", path)) == ((200, ""), {"delete_asked": 1})
    assert await _cost(daemon, bob.call("PATCH", path, {"message": "x"})) == (
        (409, "conflict"), {"edit_asked": 1})


@pytest_twisted.ensureDeferred
async def test_a_dead_token_is_refused_first_and_at_once(api: Api, daemon: Any) -> None:
    alice = await api.user()
    uri = await alice.new_chat()
    seq = (await alice.post(uri, "hello"))["seq"]
    path = f"/api/chats/{uri}/messages/{seq}"
    assert (await alice.call("PATCH", path, {"message": "fine"}))[0] == 200
    assert (await alice.call("DELETE", "/api/auth/token"))[0] == 204
    # Signed out: the very next change is refused, in its one transaction.
    assert await _cost(daemon, alice.call("PATCH", path, {"message": "late"})) == (
        (401, "unauthenticated"), {"edit_asked": 1})
    assert (await alice.call("PUT", f"{path}/reactions/ok"))[0] == 401
    assert (await alice.call("DELETE", path))[0] == 401
    # A bad token is told before anything else is wrong with the request.
    nobody = {"token": "not-a-token"}
    for method, where, body in (
            ("PATCH", path, {"message": "   "}),  # an empty text
            ("PATCH", path, {"text": "x"}),  # not an EditMessage
            ("PATCH", f"/api/chats/{uri}/messages/x1", {"message": "x"}),  # no such seq
            ("PATCH", f"/api/chats/no.such/messages/{seq}", {"message": "x"}),  # no chat
            ("PATCH", f"/api/chats/{uri}/messages/{10**18}", {"message": "x"}),
            ("PUT", f"{path}/reactions/{quote('a b')}", None),  # not an emoji
            ("DELETE", f"/api/chats/{'A' * 65}/messages/{seq}", None)):
        status, reply = await api.call(method, where, body, **nobody)
        assert (status, reply["error"]["code"]) == (401, "unauthenticated"), (method, where)
    again = await _token(api, alice.name)
    _, page = await api.call("GET", f"/api/chats/{uri}/messages", token=again)
    assert [m["message"] for m in page["messages"]] == ["fine"]


async def _token(api: Api, name: str) -> str:
    status, body = await api.call("POST", "/api/auth/token",
                                  {"username": name, "password": "correct horse"})
    assert status == 200
    return str(body["token"])


@pytest_twisted.ensureDeferred
async def test_the_send_rate_counts_changes_the_rules_let_by(make_daemon: Any,
                                                            db_url: str) -> None:
    """In the store's transaction (on SQLite, its thread): a refusal by the rules takes
    nothing from --send-rate, a change past it is 429 and changes nothing."""
    daemon = await make_daemon(db=db_url, send_rate=0.001, send_burst=3)
    api = Api(daemon.base_url)
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    theirs = (await bob.post(uri, "bob's"))["seq"]
    mine = (await alice.post(uri, "alice's"))["seq"]  # 1 of alice's 3
    messages = f"/api/chats/{uri}/messages"
    for _ in range(5):  # refused by the rules: no send taken
        assert (await alice.call("PATCH", f"{messages}/{theirs}", {"message": "x"}))[0] == 403
    assert (await alice.call("PATCH", f"{messages}/{mine}", {"message": "alice!"}))[0] == 200
    assert (await alice.call("PUT", f"{messages}/{theirs}/reactions/ok"))[0] == 200
    status, reply = await alice.call("PUT", f"{messages}/{theirs}/reactions/no")
    assert (status, reply["error"]["code"]) == (429, "rate_limited")
    assert (await alice.call("PATCH", f"{messages}/{mine}", {"message": "late"}))[0] == 429
    assert (await alice.call("PATCH", f"{messages}/{theirs}", {"message": "x"}))[0] == 403
    assert (await alice.call("DELETE", f"{messages}/{mine}"))[0] == 200  # not counted
    _, page = await bob.call("GET", f"{messages}?limit=10")
    shown = {m["seq"]: m for m in page["messages"]}
    assert [r["emoji"] for r in shown[theirs]["reactions"]] == ["ok"]
    assert shown[mine]["deleted"] and shown[theirs]["message"] == "bob's"


@pytest_twisted.ensureDeferred
async def test_on_postgresql_the_row_lock_is_a_member_s_and_held_for_one_round_trip(
        make_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat row is locked first, in the round trip that reads the standing, and only
    for a member with a live token: an outsider's change is refused without waiting for
    (or taking) the chat's lock, a member's waits for it; an edit or a delete is then two
    round trips in all (the change rides with the COMMIT), a reaction five."""
    import psycopg2
    from twisted.internet import reactor

    from chatire.store.postgres import PostgresCursor, split_url
    from tests.support.services import fresh_database

    with fresh_database() as url:
        daemon = await make_daemon(db=url)
        api = Api(daemon.base_url)
        alice, eve = await api.user(), await api.user()
        uri = await alice.new_chat()
        seq = (await alice.post(uri, "hello"))["seq"]
        path = f"/api/chats/{uri}/messages/{seq}"

        # Round trips by cursor (the daemon's timers run transactions of their own meanwhile).
        trips: list[tuple[int, str]] = []
        execute, finish = PostgresCursor.execute, PostgresCursor.finish

        async def counted_execute(self: Any, sql: str, *args: Any, **kw: Any) -> None:
            trips.append((id(self), sql))
            await execute(self, sql, *args, **kw)

        def counted_finish(self: Any, verb: str) -> Any:
            trips.append((id(self), verb))
            return finish(self, verb)

        def the_change_s() -> list[str]:
            """The round trips of the change's transaction (its standing read asks whether
            the lock queued before it was taken)."""
            mine = {cursor for cursor, sql in trips if "pg_current_xact_id_if_assigned" in sql}
            assert len(mine) == 1, trips
            return [sql for cursor, sql in trips if cursor in mine]

        monkeypatch.setattr(PostgresCursor, "execute", counted_execute)
        monkeypatch.setattr(PostgresCursor, "finish", counted_finish)
        for method, target, body, expected in (
                ("PATCH", path, {"message": "hello!"}, 2),
                ("PUT", f"{path}/reactions/{quote(THUMBS, safe='')}", None, 5),
                ("DELETE", path, None, 2)):
            seq = (await alice.post(uri, "again"))["seq"] if method == "DELETE" else seq
            target = f"/api/chats/{uri}/messages/{seq}" if method == "DELETE" else target
            del trips[:]
            assert (await alice.call(method, target, body))[0] == 200
            assert len(the_change_s()) == expected, (method, the_change_s())

        holder = psycopg2.connect(split_url(url)[0])
        try:
            with holder.cursor() as cur:  # another session holds the chat's row
                cur.execute("SELECT 1 FROM chats WHERE uri = %s FOR UPDATE", (uri,))
            refused = Deferred.fromCoroutine(eve.call("PATCH", path, {"message": "x"}))
            refused.addTimeout(10, reactor)
            assert (await refused)[0] == 403  # at once: she never asked for the lock
            edit = Deferred.fromCoroutine(alice.call("PATCH", path, {"message": "later"}))
            await deferLater(reactor, 0.5, lambda: None)
            assert not edit.called  # a member's change waits for the lock...
        finally:
            holder.rollback()
            holder.close()
        assert (await edit)[0] == 200  # ...and goes through once it is free
