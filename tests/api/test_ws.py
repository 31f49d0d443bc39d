"""The WebSocket of PROTOCOL.md over real sockets: auth, frames, live delivery, limits."""

from __future__ import annotations

import gc
import json
import socket
import weakref
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from tests.support.client import Api, Socket


async def _two_members(api: Api) -> tuple[Any, Any, str]:
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)
    return alice, bob, uri


async def _closed(sock: Socket, timeout: float = 5.0) -> int | None:
    d: defer.Deferred[Any] = defer.Deferred()
    sock.closed.addBoth(lambda code: (d.callback(code), code)[1])
    d.addTimeout(timeout, reactor)
    return await d


@pytest_twisted.ensureDeferred
async def test_chat_live_both_ways_with_sent_and_http_posts(daemon: Any, api: Api) -> None:
    alice, bob, uri = await _two_members(api)
    ws_a = await Socket.open(api.base_url, alice.token)
    ws_b = await Socket.open(api.base_url, bob.token, auth_frame=False)
    # Bob's join is the chat's seq 1: messages start at 2.
    assert (await ws_a.subscribe(uri)) == {"type": "subscribed", "chat": uri, "last_seq": 1,
                                           "online": [alice.id]}
    await ws_b.subscribe(uri)
    ws_a.send({"type": "send", "chat": uri, "message": " hi bob ", "client_id": "a1"})
    echo, sent = await ws_a.next(), await ws_a.next()
    assert sent == {"type": "sent", "chat": uri, "client_id": "a1", "seq": 2,
                    "id": echo["id"]}
    ws_a.frames.pending.insert(0, echo)
    for ws in (ws_a, ws_b):
        frame = await ws.next_of("message")
        assert frame["seq"] == 2 and frame["message"] == "hi bob"
        assert frame["user"]["id"] == alice.id and frame["client_id"] == "a1"
        assert set(frame) == {"type", "chat", "seq", "id", "user", "message", "client_id",
                              "created_at", "reply_to", "edited_at", "deleted", "reactions"}
    await bob.post(uri, "over http")
    for ws in (ws_a, ws_b):
        frame = await ws.next_of("message")
        assert (frame["seq"], frame["message"]) == (3, "over http")
    ws_b.send({"type": "typing", "chat": uri})
    typing = await ws_a.next_of("typing")
    assert typing["user"]["id"] == bob.id and typing["chat"] == uri
    # The same client_id again: acknowledged with the first message, stored once.
    ws_a.send({"type": "send", "chat": uri, "message": "again", "client_id": "a1"})
    assert (await ws_a.next_of("sent"))["seq"] == 2  # and no second message frame
    _, body = await alice.call("GET", f"/api/chats/{uri}/messages")
    assert [m["seq"] for m in body["messages"]] == [2, 3]
    ws_a.send({"type": "unsubscribe", "chat": uri})
    assert await ws_a.next_of("unsubscribed") == {"type": "unsubscribed", "chat": uri}
    await ws_a.close()
    await ws_b.close()


@pytest_twisted.ensureDeferred
async def test_resume_with_after_replays_then_goes_live(daemon: Any, api: Api) -> None:
    alice, bob, uri = await _two_members(api)
    for i in range(5):
        await alice.post(uri, f"m{i}")
    ws = await Socket.open(api.base_url, bob.token)  # messages 2..6 (bob's join is 1)
    assert (await ws.subscribe(uri, after=3))["last_seq"] == 6
    assert [(await ws.next_of("message"))["seq"] for _ in range(3)] == [4, 5, 6]
    await alice.post(uri, "live")
    assert (await ws.next_of("message"))["seq"] == 7
    ws.send({"type": "subscribe", "chat": uri, "after": 8})
    error = await ws.next_of("error")
    assert error["code"] == "invalid" and error["chat"] == uri
    await ws.close()


@pytest_twisted.ensureDeferred
async def test_refused_frames_get_errors_and_the_socket_keeps_working(daemon: Any,
                                                                      api: Api) -> None:
    alice, _bob, uri = await _two_members(api)
    stranger = await api.user()
    ws = await Socket.open(api.base_url)
    ws.send({"type": "subscribe", "chat": uri, "after": None})
    assert (await ws.next())["code"] == "unauthenticated"
    ws.send({"type": "auth", "token": alice.token})
    assert (await ws.next())["type"] == "ready"
    bad: list[Any] = [b"not json", b"[1,2]", b'{"no":"type"}', {"type": "fly"},
                      {"type": "send", "chat": uri}, {"type": "subscribe"},
                      {"type": "send", "chat": uri, "message": 5, "client_id": "x"},
                      {"type": "send", "chat": uri, "message": "   ", "client_id": "y"},
                      {"type": "subscribe", "chat": "nope", "after": None},
                      {"type": "auth", "token": alice.token}]
    codes = []
    for frame in bad:
        ws.send(frame)
        codes.append((await ws.next())["code"])
    assert codes == ["invalid"] * 8 + ["not_found", "invalid"]
    ws.protocol.sendMessage(b"\x00\x01", isBinary=True)
    assert (await ws.next())["code"] == "invalid"
    ws_s = await Socket.open(api.base_url, stranger.token)
    ws_s.send({"type": "subscribe", "chat": uri, "after": None})
    assert (await ws_s.next())["code"] == "forbidden"
    ws_s.send({"type": "send", "chat": uri, "message": "let me in", "client_id": "s"})
    error = await ws_s.next()
    assert (error["code"], error["client_id"]) == ("forbidden", "s")
    await ws.subscribe(uri)  # still serving
    await ws.close()
    await ws_s.close()


@pytest_twisted.ensureDeferred
async def test_bad_token_and_auth_timeout_close_4001(make_daemon: Any) -> None:
    daemon = await make_daemon(auth_timeout=0.3)
    ws = await Socket.open(daemon.base_url)
    ws.send({"type": "auth", "token": "garbage"})
    assert (await ws.next())["code"] == "unauthenticated"
    assert await _closed(ws) == 4001
    ws = await Socket.open(daemon.base_url, "garbage", auth_frame=False)
    assert await _closed(ws) == 4001
    ws = await Socket.open(daemon.base_url)
    assert await _closed(ws) == 4001


@pytest_twisted.ensureDeferred
async def test_sign_out_and_leave_end_what_they_allowed(daemon: Any, api: Api) -> None:
    alice, bob, uri = await _two_members(api)
    ws_b = await Socket.open(api.base_url, bob.token)
    await ws_b.subscribe(uri)
    status, _ = await bob.call("DELETE", f"/api/chats/{uri}/members/me")
    assert status == 204
    assert await ws_b.next_of("unsubscribed", timeout=1.0) == {"type": "unsubscribed",
                                                               "chat": uri}
    await alice.post(uri, "bob must not see this")
    ws_a = await Socket.open(api.base_url, alice.token)
    status, _ = await alice.call("DELETE", "/api/auth/token")
    assert status == 204
    assert await _closed(ws_a, timeout=1.0) == 4001
    ws_b.send({"type": "subscribe", "chat": uri, "after": 0})
    assert (await ws_b.next())["code"] == "forbidden"
    await ws_b.close()


@pytest_twisted.ensureDeferred
async def test_origin_allow_list(make_daemon: Any) -> None:
    daemon = await make_daemon(allowed_origin=("https://chat.example",))
    api = Api(daemon.base_url)
    alice = await api.user()
    own = daemon.base_url
    for origin in (own, "https://chat.example", None):
        ws = await Socket.open(daemon.base_url, alice.token, origin=origin)
        await ws.close()
    for origin in ("http://evil.example", "null", "https://chat.example.evil"):
        with pytest.raises(Exception, match=r"403|closed"):
            await Socket.open(daemon.base_url, alice.token, origin=origin)


@pytest_twisted.ensureDeferred
async def test_oversized_frames_close_1009(make_daemon: Any) -> None:
    daemon = await make_daemon(max_frame_bytes=1024)
    alice = await Api(daemon.base_url).user()
    ws = await Socket.open(daemon.base_url, alice.token)
    ws.send({"type": "typing", "chat": "x" * 2000})
    assert await _closed(ws) == 1009


@pytest_twisted.ensureDeferred
async def test_connection_cap_refuses_the_upgrade(make_daemon: Any) -> None:
    daemon = await make_daemon(max_connections=2)
    first = [await Socket.open(daemon.base_url) for _ in range(2)]
    with pytest.raises(Exception, match=r"503|closed"):
        await Socket.open(daemon.base_url)
    for ws in first:
        await ws.close()


@pytest_twisted.ensureDeferred
async def test_send_rate_limit_over_the_socket(make_daemon: Any) -> None:
    daemon = await make_daemon(send_rate=1, send_burst=3)
    api = Api(daemon.base_url)
    alice = await api.user()
    uri = await alice.new_chat()
    ws = await Socket.open(daemon.base_url, alice.token)
    for i in range(4):
        ws.send({"type": "send", "chat": uri, "message": f"m{i}", "client_id": f"c{i}"})
    replies = [await ws.next() for _ in range(4)]
    assert [r["type"] for r in replies].count("sent") == 3
    refused = [r for r in replies if r["type"] == "error"]
    assert refused[0]["code"] == "rate_limited" and refused[0]["client_id"] == "c3"
    status, body = await alice.call("POST", f"/api/chats/{uri}/messages", {"message": "x"})
    assert status == 429 and body["error"]["code"] == "rate_limited"
    await ws.close()


# 3 s is past the close handshake's own 2 s: before the frame waited --ping-timeout,
# such a reader saw 1006 too.
@pytest.mark.parametrize(("wait", "stalled", "seen"), [(10.0, 3.0, 4008), (2.0, 4.0, 1006)])
@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_is_closed_4008(
        make_daemon: Any, wait: float, stalled: float, seen: int) -> None:
    """4008 reaches a reader that resumes within --ping-timeout of the close (the close
    frame comes after its backlog); one stalled longer is dropped without a close frame."""
    daemon = await make_daemon(slow_reader_bytes=200_000, max_message_chars=60_000,
                               ping_timeout=wait)
    api = Api(daemon.base_url)
    alice = await api.user()
    uri = await alice.new_chat()
    reader = await Socket.open(daemon.base_url, alice.token)
    await reader.subscribe(uri)
    # Stop reading, with a small kernel buffer so the daemon's side fills up sooner.
    reader.protocol.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    reader.protocol.transport.pauseProducing()
    writer = await Socket.open(daemon.base_url, alice.token)
    text = "z" * 60_000  # up to 24 MB: more than the kernel's socket buffers hold
    for i in range(400):
        writer.send({"type": "send", "chat": uri, "message": text, "client_id": f"w{i}"})
        if i % 20 == 19:
            await writer.next_of("sent")
        if daemon.hub.subscription_count() == 0:
            break
    for _ in range(100):
        if daemon.hub.subscription_count() == 0:
            break
        await task.deferLater(reactor, 0.05, lambda: None)
    assert daemon.hub.subscription_count() == 0  # dropped, not buffered without bound
    await task.deferLater(reactor, stalled, lambda: None)
    reader.protocol.transport.resumeProducing()
    assert await _closed(reader, timeout=10) == seen
    await writer.close()


def test_frames_are_json_objects() -> None:
    assert json.loads('{"type":"x"}')["type"] == "x"


@pytest_twisted.ensureDeferred
async def test_a_peer_that_stops_answering_pings_is_dropped(make_daemon: Any) -> None:
    daemon = await make_daemon(ping_interval=0.5, ping_timeout=1.0)
    alice = await Api(daemon.base_url).user()
    quiet = await Socket.open(daemon.base_url, alice.token)
    lively = await Socket.open(daemon.base_url, alice.token)
    assert daemon.sockets.open_count == 2
    quiet.protocol.transport.pauseProducing()  # reads nothing, so answers no ping
    for _ in range(100):
        if daemon.sockets.open_count == 1:
            break
        await task.deferLater(reactor, 0.05, lambda: None)
    assert daemon.sockets.open_count == 1  # the quiet one was dropped, the lively one stays
    await lively.subscribe(await alice.new_chat())
    await lively.close()


async def _subscribed(service: Any) -> tuple[Socket, str, Any]:
    """A user's socket subscribed to a new chat, and the daemon's side of it."""
    alice = await Api(service.base_url).user()
    uri = await alice.new_chat()
    ws = await Socket.open(service.base_url, alice.token)
    await ws.subscribe(uri)
    return ws, uri, next(iter(service.hub._subs[uri]))


@pytest_twisted.ensureDeferred
async def test_a_closed_socket_is_freed_without_the_cycle_collector(make_daemon: Any) -> None:
    # The daemon runs full collections rarely (chatire.collector), so a closed
    # socket must not hang on a reference cycle until one comes.
    service = await make_daemon()
    ws, uri, daemon_side = await _subscribed(service)
    ws.send({"type": "send", "chat": uri, "message": "hello", "client_id": "c1"})
    await ws.next_of("sent")
    server_side = weakref.ref(daemon_side)
    del daemon_side
    gc.disable()
    try:
        await ws.close()
        for _ in range(100):
            if service.sockets.open_count == 0 and server_side() is None:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        assert service.sockets.open_count == 0
        assert server_side() is None, gc.get_referrers(server_side())
    finally:
        gc.enable()


@pytest_twisted.ensureDeferred
async def test_sockets_send_without_nagle(make_daemon: Any) -> None:
    # A frame must not wait for the peer's delayed ACK of the one before.
    ws, _, server_side = await _subscribed(await make_daemon())
    handle = server_side.transport.getHandle()
    assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    await ws.close()
