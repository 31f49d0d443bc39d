"""Frames racing a close: sockets that send frames and go before their token is checked.

A frame queued behind header (or frame) authentication must not run for a socket that
closed meanwhile: once every socket is gone the daemon holds no subscription, no
connection in its Hub and follows no chat on the bus (only its control channel).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor, task, threads

from chatire.frames import CONTROL
from tests.fuzz import rawws
from tests.fuzz.conftest import EXPLORE, unlimited_fields
from tests.fuzz.strategies import wire
from tests.support.client import Api

#: What a racing socket sends behind its upgrade request, in the same write.
KINDS = ["subscribe", "subscribe-other", "send", "typing", "unsubscribe", "auth"]
#: How it goes, right after its frames: a close frame, FIN, or a reset.
ENDINGS = ["close-frame", "fin", "reset"]
HOST = "127.0.0.1"
#: How long the token check takes in this test: the window the frames race through.
AUTH_DELAY = 0.05


def _frames(token: str, chats: list[str], kinds: list[str], header: bool) -> bytes:
    """What a racing socket writes behind its upgrade request, in the same write."""
    frames = b"" if header else rawws.frame(wire({"type": "auth", "token": token}))
    for kind in kinds:
        body: dict[str, Any] = {"auth": {"type": "auth", "token": token},
                                "subscribe": {"type": "subscribe", "chat": chats[0],
                                              "after": 0},
                                "subscribe-other": {"type": "subscribe", "chat": chats[1],
                                                    "after": None},
                                "send": {"type": "send", "chat": chats[0], "message": "race",
                                         "client_id": None},
                                "typing": {"type": "typing", "chat": chats[0]},
                                "unsubscribe": {"type": "unsubscribe", "chat": chats[1]}}[kind]
        frames += rawws.frame(wire(body))
    return frames


def _race(port: int, token: str, chats: list[str],
          sockets: list[tuple[list[str], bool, str]]) -> None:
    """Open every socket; then on each, its frames and its end in one write."""
    opened = []
    for kinds, header, ending in sockets:
        ws = rawws.RawSocket(HOST, port, token if header else None, timeout=3)
        opened.append((ws, _frames(token, chats, kinds, header), ending))
    for ws, frames, ending in opened:
        if ending == "close-frame":
            frames += rawws.frame(struct.pack("!H", 1000), rawws.CLOSE)
        ws.sock.sendall(frames)
        if ending == "reset":
            ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            ws.sock.shutdown(socket.SHUT_WR)
        ws.sock.close()


async def _slowly(authenticate: Callable[[str], Awaitable[Any]], token: str) -> Any:
    await task.deferLater(reactor, AUTH_DELAY, lambda: None)
    return await authenticate(token)


async def test_frames_racing_a_close_leave_nothing_behind(make_daemon: Any) -> None:
    service = await make_daemon(**unlimited_fields())
    api = Api(service.base_url)
    user = await api.user(password="fuzzing horse 42")
    chats = [await user.new_chat("race"), await user.new_chat("race too")]
    port = service.ports[0].getHost().port
    # A store under load answers late; here every token check does (the real one, later).
    service.chats.authenticate = partial(_slowly, service.chats.authenticate)

    def on_the_reactor(f: Any) -> Any:
        return threads.blockingCallFromThread(reactor, f)

    def state() -> dict[str, Any]:
        return {"open sockets": service.sockets.open_count,
                "subscriptions": service.hub.subscription_count(),
                "Hub connections": len(service.hub.connections()),
                "followed": sorted(service.bus._followed)}

    settled = {"open sockets": 0, "subscriptions": 0, "Hub connections": 0,
               "followed": [CONTROL]}

    @settings(max_examples=15, deadline=None, database=None, derandomize=not EXPLORE,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(sockets=st.lists(st.tuples(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4),
                                      st.booleans(), st.sampled_from(ENDINGS)),
                            min_size=1, max_size=8))
    @example(sockets=[(["subscribe"], True, "close-frame")] * 8)
    def fuzz(sockets: list[tuple[list[str], bool, str]]) -> None:
        _race(port, user.token, chats, sockets)
        deadline = time.monotonic() + 5
        while on_the_reactor(state)["open sockets"] and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(3 * AUTH_DELAY)  # the frames that waited behind the token check run now
        now = on_the_reactor(state)
        while now != settled and time.monotonic() < deadline:
            time.sleep(0.02)
            now = on_the_reactor(state)
        assert now == settled, (sockets, now)

    await threads.deferToThread(fuzz)

