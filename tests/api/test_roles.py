"""Roles, settings, removals and bans, invites and direct chats, on both stores: every
action by owner, admin and member against each target role, allowed or refused."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.support.client import Api, Socket, User


async def _group(api: Api) -> tuple[User, User, User, User, str]:
    """A chat with an owner, an admin and two members."""
    owner, admin, member, other = [await api.user() for _ in range(4)]
    uri = await owner.new_chat()
    for user in (admin, member, other):
        await user.join(uri)
    status, body = await owner.call("PUT", f"/api/chats/{uri}/members/{admin.id}/role",
                                    {"role": "admin"})
    assert status == 200 and body["member"]["role"] == "admin"
    return owner, admin, member, other, uri


async def _roles(user: User, uri: str) -> dict[int, str]:
    status, body = await user.call("GET", f"/api/chats/{uri}")
    assert status == 200, body
    return {m["id"]: m["role"] for m in body["members"]}


#: (actor, target, allowed) for removing a member: the owner removes anyone else, an
#: admin removes members only, a member nobody.
REMOVALS = [("owner", "admin", True), ("owner", "member", True), ("admin", "member", True),
            ("admin", "owner", False), ("admin", "admin2", False), ("member", "member", False),
            ("member", "owner", False), ("member", "admin", False)]


@pytest.mark.parametrize(("actor", "target", "allowed"), REMOVALS)
@pytest_twisted.ensureDeferred
async def test_who_may_remove_whom(api: Api, actor: str, target: str, allowed: bool) -> None:
    owner, admin, member, other, uri = await _group(api)
    if target == "admin2":  # a second admin, for admin against admin
        await owner.call("PUT", f"/api/chats/{uri}/members/{other.id}/role", {"role": "admin"})
    people = {"owner": owner, "admin": admin, "member": member, "admin2": other}
    subject = people[target] if target != actor else other
    status, body = await people[actor].call(
        "DELETE", f"/api/chats/{uri}/members/{subject.id}")
    assert status == (204 if allowed else 403), (actor, target, status, body)
    assert (subject.id in await _roles(owner, uri)) is not allowed


#: Settings, roles, invites and deleting: who may.
ACTIONS: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("PATCH", "/api/chats/{uri}", {"title": "renamed"}, {"owner", "admin"}),
    ("PATCH", "/api/chats/{uri}", {"join": "invite"}, {"owner", "admin"}),
    ("PUT", "/api/chats/{uri}/members/{other}/role", {"role": "admin"}, {"owner"}),
    ("POST", "/api/chats/{uri}/invites", {}, {"owner", "admin"}),
    ("GET", "/api/chats/{uri}/invites", None, {"owner", "admin"}),
    ("DELETE", "/api/chats/{uri}", None, {"owner"}),
]


@pytest.mark.parametrize("actor", ["owner", "admin", "member"])
@pytest.mark.parametrize(("method", "path", "body", "allowed"), ACTIONS)
@pytest_twisted.ensureDeferred
async def test_who_may_run_the_chat(api: Api, actor: str, method: str, path: str,
                                    body: dict[str, Any] | None, allowed: set[str]) -> None:
    owner, admin, member, other, uri = await _group(api)
    who = {"owner": owner, "admin": admin, "member": member}[actor]
    status, reply = await who.call(method, path.format(uri=uri, other=other.id), body)
    assert (status < 300) is (actor in allowed), (actor, method, path, status, reply)
    if status >= 300:
        assert status == 403 and reply["error"]["code"] == "forbidden"


@pytest_twisted.ensureDeferred
async def test_rename_settings_and_role_changes_are_timeline_events(api: Api) -> None:
    owner, admin, member, _other, uri = await _group(api)
    await admin.call("PATCH", f"/api/chats/{uri}", {"title": "  new name "})
    status, body = await admin.call("PATCH", f"/api/chats/{uri}", {"join": "invite"})
    assert body["chat"]["title"] == "new name" and body["chat"]["join"] == "invite"
    for bad in ({"join": "door"}, {"title": "x" * 201}):
        assert (await owner.call("PATCH", f"/api/chats/{uri}", bad))[0] == 400
    # Handing the chat over: the new owner is owner, the old one admin.
    status, body = await owner.call("PUT", f"/api/chats/{uri}/members/{member.id}/role",
                                    {"role": "owner"})
    assert status == 200 and body["member"]["role"] == "owner"
    roles = await _roles(member, uri)
    assert (roles[member.id], roles[owner.id]) == ("owner", "admin")
    _, events = await member.call("GET", f"/api/chats/{uri}/events")
    kinds = [(e["kind"], e.get("role") or e.get("title") or e.get("join"))
             for e in events["events"] if e["kind"] in ("role", "rename", "settings")]
    assert kinds == [("role", "admin"), ("rename", "new name"), ("settings", "invite"),
                     ("role", "owner"), ("role", "admin")]
    # The old owner is now an admin: no more owner-only calls.
    assert (await owner.call("DELETE", f"/api/chats/{uri}"))[0] == 403
    assert (await member.call("PUT", f"/api/chats/{uri}/members/{member.id}/role",
                              {"role": "member"}))[0] == 400


@pytest_twisted.ensureDeferred
async def test_removal_ends_subscriptions_and_sends_and_a_ban_keeps_them_out(
        api: Api) -> None:
    owner, admin, member, _other, uri = await _group(api)
    ws = await Socket.open(api.base_url, member.token)
    await ws.subscribe(uri)
    status, _ = await admin.call("DELETE", f"/api/chats/{uri}/members/{member.id}?ban=1")
    assert status == 204
    ended = await ws.next_of("unsubscribed", timeout=1.0)
    assert ended == {"type": "unsubscribed", "chat": uri, "reason": "removed"}
    ws.send({"type": "send", "chat": uri, "message": "still here?", "client_id": "x"})
    assert (await ws.next_of("error"))["code"] == "forbidden"
    assert (await member.call("POST", f"/api/chats/{uri}/members"))[0] == 403
    _, body = await owner.call("POST", f"/api/chats/{uri}/invites", {})
    code = body["invite"]["code"]
    assert (await member.call("POST", f"/api/invites/{code}"))[0] == 403
    _, events = await owner.call("GET", f"/api/chats/{uri}/events")
    removal = next(e for e in events["events"] if e["kind"] == "remove")
    assert removal["subject"]["id"] == member.id and removal["ban"] is True
    assert removal["user"]["id"] == admin.id
    # Unbanned: back through the link.
    assert (await admin.call("DELETE", f"/api/chats/{uri}/bans/{member.id}"))[0] == 204
    assert (await admin.call("DELETE", f"/api/chats/{uri}/bans/{member.id}"))[0] == 404
    assert (await member.call("POST", f"/api/chats/{uri}/members"))[0] == 200
    await ws.close()


@pytest_twisted.ensureDeferred
async def test_invites_expire_run_out_are_revoked_and_all_look_the_same(api: Api) -> None:
    owner, admin, _member, _other, uri = await _group(api)
    await owner.call("PATCH", f"/api/chats/{uri}", {"join": "invite"})
    guest, late, third = await api.user(), await api.user(), await api.user()
    assert (await guest.call("POST", f"/api/chats/{uri}/members"))[0] == 403
    status, body = await admin.call("POST", f"/api/chats/{uri}/invites", {"max_uses": 2})
    assert status == 201
    invite = body["invite"]
    assert invite["uses_left"] == 2 and invite["url"].endswith(f"/i/{invite['code']}")
    assert len(invite["code"]) >= 22 and invite["created_by"]["id"] == admin.id
    status, body = await guest.call("GET", f"/api/invites/{invite['code']}")
    assert status == 200 and body["invited_by"]["id"] == admin.id
    status, body = await guest.call("POST", f"/api/invites/{invite['code']}")
    assert status == 200 and body["chat"]["uri"] == uri
    assert (await guest.call("POST", f"/api/invites/{invite['code']}"))[0] == 200  # a member
    _, listed = await owner.call("GET", f"/api/chats/{uri}/invites")
    assert [i["uses_left"] for i in listed["invites"]] == [1]  # a member takes no use
    assert (await third.call("POST", f"/api/invites/{invite['code']}"))[0] == 200
    _, listed = await owner.call("GET", f"/api/chats/{uri}/invites")
    assert listed["invites"] == []  # used up
    _, body = await owner.call("POST", f"/api/chats/{uri}/invites", {"expires_in": 3600})
    revoked = body["invite"]["code"]
    assert (await owner.call("DELETE", f"/api/chats/{uri}/invites/{revoked}"))[0] == 204
    refusals = []
    for code in (invite["code"], revoked, "x" * 32, "short", "%00"):
        status, body = await late.call("POST", f"/api/invites/{code}")
        refusals.append((status, body["error"]["code"], body["error"]["message"]))
    assert set(refusals) == {(404, "not_found", "no such invite")}
    assert (await third.call("GET", f"/api/invites/{revoked}"))[0] == 404
    for bad in ({"max_uses": 0}, {"expires_in": -5}, {"max_uses": "many"}):
        assert (await owner.call("POST", f"/api/chats/{uri}/invites", bad))[0] == 400


@pytest_twisted.ensureDeferred
async def test_the_owner_leaving_hands_over_and_the_last_member_deletes(api: Api) -> None:
    owner, admin, member, other, uri = await _group(api)
    watcher = await Socket.open(api.base_url, member.token)
    await watcher.subscribe(uri)
    await owner.call("DELETE", f"/api/chats/{uri}/members/me")
    assert (await _roles(member, uri))[admin.id] == "owner"
    for user in (admin, member):
        await user.call("DELETE", f"/api/chats/{uri}/members/me")
    await other.post(uri, "last one here")
    await other.call("DELETE", f"/api/chats/{uri}/members/me")
    assert (await other.call("GET", f"/api/chats/{uri}"))[0] == 404
    assert (await other.call("POST", f"/api/chats/{uri}/members"))[0] == 404
    await watcher.close()


@pytest_twisted.ensureDeferred
async def test_deleting_a_chat_ends_every_subscription(api: Api, config: Any) -> None:
    from tests.api.test_read_state import _every_text

    owner, admin, member, _other, uri = await _group(api)
    sockets = [await Socket.open(api.base_url, user.token) for user in (admin, member)]
    for ws in sockets:
        await ws.subscribe(uri)
    await member.post(uri, "soon gone")
    assert "soon gone" in _every_text(config.db)
    assert (await owner.call("DELETE", f"/api/chats/{uri}"))[0] == 204
    assert "soon gone" not in _every_text(config.db)  # erased from the store itself
    for ws in sockets:
        ended = await ws.next_of("unsubscribed", timeout=1.0)
        assert ended == {"type": "unsubscribed", "chat": uri, "reason": "deleted"}
        await ws.close()
    for user in (owner, member):
        assert (await user.call("GET", f"/api/chats/{uri}/messages"))[0] == 404
    _, listed = await member.call("GET", "/api/chats")
    assert uri not in str(listed)


@pytest_twisted.ensureDeferred
async def test_direct_chats_are_one_per_pair_and_closed_to_others(api: Api) -> None:
    alice, bob, eve = await api.user(), await api.user(), await api.user()
    status, body = await alice.call("POST", "/api/direct", {"username": bob.name})
    assert status == 201 and body["chat"]["kind"] == "direct"
    uri = body["chat"]["uri"]
    status, body = await bob.call("POST", "/api/direct", {"username": alice.name.upper()})
    assert status == 200 and body["chat"]["uri"] == uri
    assert (await eve.call("POST", f"/api/chats/{uri}/members"))[0] == 403
    assert (await alice.call("POST", f"/api/chats/{uri}/invites", {}))[0] == 403
    assert (await alice.call("PUT", f"/api/chats/{uri}/members/{bob.id}/role",
                             {"role": "admin"}))[0] == 403
    assert (await alice.call("POST", "/api/direct", {"username": alice.name}))[0] == 400
    assert (await alice.call("POST", "/api/direct", {"username": "nobody-here"}))[0] == 404
    await bob.post(uri, "hi alice")
    _, page = await alice.call("GET", f"/api/chats/{uri}/messages")
    assert [m["message"] for m in page["messages"]] == ["hi alice"]


@pytest.mark.postgres
@pytest_twisted.ensureDeferred
async def test_races_for_the_last_invite_use_and_a_direct_chat(api: Api, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the race is PostgreSQL's (SQLite runs one transaction at a time)")
    owner, _admin, _member, _other, uri = await _group(api)
    for _ in range(3):
        _, body = await owner.call("POST", f"/api/chats/{uri}/invites", {"max_uses": 1})
        code = body["invite"]["code"]
        racers = [await api.user() for _ in range(4)]
        replies = await defer.gatherResults([defer.ensureDeferred(
            user.call("POST", f"/api/invites/{code}")) for user in racers])
        assert sorted(status for status, _ in replies) == [200, 404, 404, 404], replies
    for _ in range(3):
        one, two = await api.user(), await api.user()
        asks = [who.call("POST", "/api/direct", {"username": to.name})
                for who, to in ((one, two), (two, one), (one, two), (two, one))]
        replies = await defer.gatherResults([defer.ensureDeferred(a) for a in asks])
        assert len({body["chat"]["uri"] for _, body in replies}) == 1
        assert sorted(status for status, _ in replies) == [200, 200, 200, 201]


@pytest_twisted.ensureDeferred
async def test_an_invite_expires_at_its_time(db_url: str) -> None:
    """The store judges expiry by the time it is given: a second after is too late."""
    from datetime import UTC, datetime, timedelta

    from twisted.internet import reactor

    from chatire.errors import NotFound
    from chatire.store import store_from_url

    now = datetime(2026, 1, 1, tzinfo=UTC)
    store = store_from_url(db_url, reactor)
    await store.start()
    owner = await store.create_user("owner", "x", "owner", now)
    guest = await store.create_user("guest", "x", "guest", now)
    chat = await store.create_chat("a" * 24, "t", owner.id, now)
    invite = await store.create_invite(chat, owner, "e" * 32, now + timedelta(seconds=60),
                                       None, now)
    assert [i.code for i in await store.invites(chat, now + timedelta(seconds=59))] == [
        invite.code]
    assert await store.invites(chat, now + timedelta(seconds=60)) == []
    with pytest.raises(NotFound):
        await store.use_invite(invite.code, guest, now + timedelta(seconds=61))
    joined, event = await store.use_invite(invite.code, guest, now + timedelta(seconds=1))
    assert joined.uri == chat.uri and event is not None and event.kind == "join"
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_chat_list_changes_reach_the_users_sockets(api: Api) -> None:
    """A chat made, joined or deleted elsewhere: the user's sockets are told to look again
    (even one that follows no chat)."""
    alice, bob, carol = await api.user(), await api.user(), await api.user()
    bob_ws = await Socket.open(api.base_url, bob.token)
    carol_ws = await Socket.open(api.base_url, carol.token)
    await alice.call("POST", "/api/direct", {"username": bob.name})
    assert await bob_ws.next_of("chats_changed", timeout=1.0) == {"type": "chats_changed"}
    uri = await alice.new_chat()
    await carol.join(uri)
    assert await carol_ws.next_of("chats_changed", timeout=1.0) == {"type": "chats_changed"}
    await alice.call("DELETE", f"/api/chats/{uri}")
    assert await carol_ws.next_of("chats_changed", timeout=1.0) == {"type": "chats_changed"}
    assert all(f.get("type") != "chats_changed" for f in bob_ws.frames.pending)
    for ws in (bob_ws, carol_ws):
        await ws.close()
