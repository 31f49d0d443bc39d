"""Any name in any frame's ``chat`` field, on two in-process daemons sharing one bus.

PROTOCOL.md (Abuse limits: Names): a chat uri is what the server issued; anything else,
the daemon's internal names and the broker's reserved ones included, is ``not_found``
without touching the broker. The properties: every frame gets exactly one reply of the
right kind, the socket stays open, the bus follows nothing it should not (the control
channel still followed), and afterwards a leave still ends the subscription and a
sign-out still closes the socket with 4001, whether made on the same daemon or the other.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor, threads

from chatire.bus.memory import MemoryBroker, MemoryBus
from chatire.config import Config
from chatire.frames import CONTROL
from tests.conftest import start_daemon, stop_daemon
from tests.fuzz import rawws
from tests.fuzz.conftest import EXPLORE, blocking_call, unlimited_fields
from tests.fuzz.strategies import hostile_names, name_refusals
from tests.support.client import Api
from tests.support.daemons import fresh_vhost

KINDS = ["subscribe", "unsubscribe", "typing", "send", "read"]
Frame = tuple[str, str]  # kind, chat


@pytest.fixture(params=["memory", "amqp"])
def bus_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    else:
        with fresh_vhost() as (_, url):
            yield url


@pytest_twisted.async_yield_fixture
async def pair(bus_url: str, tmp_path: Path) -> AsyncIterator[list[Any]]:
    """Two daemons on one store and one bus (a MemoryBroker of their own, or a vhost)."""
    config = Config(listen=("tcp:0:interface=127.0.0.1",),
                    db=f"sqlite:///{tmp_path / 'names.db'}", bus=bus_url, **unlimited_fields())
    broker = MemoryBroker()
    services = []
    try:
        for _ in range(2):
            bus = MemoryBus(reactor, broker) if bus_url == "memory://" else None
            services.append(await start_daemon(config, bus))
        yield services
    finally:
        for service in services:
            await stop_daemon(service)


def followed(service: Any) -> set[str]:
    """The chats a daemon's bus follows now (memory and AMQP buses both keep this set)."""
    return set(service.bus._followed)


def _frame(kind: str, chat: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": kind, "chat": chat}
    if kind == "subscribe":
        frame["after"] = None
    if kind == "send":
        frame.update(message="hello", client_id=secrets.token_hex(6))
    if kind == "read":
        frame["seq"] = 0
    return frame


def _check_reply(kind: str, chat: Any, reply: dict[str, Any]) -> None:
    if kind == "unsubscribe" and reply.get("type") == "unsubscribed":
        assert reply["chat"] == chat, reply
        return
    assert reply.get("type") == "error", (kind, chat, reply)
    codes = name_refusals(chat)
    if kind == "typing":
        codes.add("invalid")  # typing needs a subscription first
    assert reply["code"] in codes, (kind, chat, reply)


def _until_closed(ws: rawws.RawSocket) -> int | None:
    """Read on until the server closes; its close code."""
    for _ in range(100):
        try:
            ws.next_frame()
        except rawws.Closed as e:
            return e.code
        except TimeoutError:
            raise AssertionError("the socket was not closed") from None
    raise AssertionError("the socket was not closed")


def _until(ws: rawws.RawSocket, wanted: dict[str, Any]) -> None:
    """Read on until ``wanted`` comes (live frames of the chat may come before it)."""
    for _ in range(100):
        try:
            reply = ws.next_json()
        except TimeoutError:
            raise AssertionError(f"no {wanted!r}") from None
        if reply == wanted:
            return
        assert reply.get("type") in {"message", "event", "typing", "read"}, reply
    raise AssertionError(f"no {wanted!r}")


async def test_any_name_in_any_frame(pair: list[Any]) -> None:
    one, other = pair
    owner = await Api(one.base_url).user()
    chat = await owner.new_chat("names")
    member = await Api(one.base_url).user(password="fuzzing horse 42")
    await member.join(chat)
    services = {"same": one, "other": other}

    def on_the_reactor(f: Any, *args: Any) -> Any:
        return threads.blockingCallFromThread(reactor, f, *args)

    @settings(max_examples=12, deadline=None, database=None, derandomize=not EXPLORE,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(frames=st.lists(st.tuples(st.sampled_from(KINDS), hostile_names()), min_size=1,
                           max_size=6),
           leave_on=st.sampled_from(["same", "other"]),
           sign_out_on=st.sampled_from(["same", "other"]))
    @example(frames=[("subscribe", CONTROL)], leave_on="other", sign_out_on="other")
    @example(frames=[("subscribe", "amq.gen-abc"), ("subscribe", ""), ("subscribe", "x" * 300),
                     ("unsubscribe", CONTROL), ("send", CONTROL), ("typing", "amq.topic")],
             leave_on="same", sign_out_on="same")
    def fuzz(frames: list[Frame], leave_on: str, sign_out_on: str) -> None:
        try:
            exchange(frames, leave_on, sign_out_on)
        except AssertionError as e:
            raise AssertionError(f"{e}\nframes {frames!r}, leave on the {leave_on} daemon, "
                                 f"sign out on the {sign_out_on} daemon") from e

    def exchange(frames: list[Frame], leave_on: str, sign_out_on: str) -> None:
        status, body = blocking_call(one.base_url, "POST", "/api/auth/token",
                                     {"username": member.name, "password": "fuzzing horse 42"})
        assert status == 200, body
        token = body["token"]
        assert blocking_call(one.base_url, "POST", f"/api/chats/{chat}/members",
                             token=token)[0] == 200  # again, if a failed example left
        ws = rawws.RawSocket("127.0.0.1", one.ports[0].getHost().port, token, timeout=3)
        try:
            assert ws.next_json()["type"] == "ready"
            for kind, name in frames:
                ws.send_json(_frame(kind, name))
                try:
                    reply = ws.next_json()
                except TimeoutError:
                    raise AssertionError(f"no reply to {kind} {name!r}") from None
                _check_reply(kind, name, reply)
            rawws.still_open(ws)
            for service in pair:  # nothing followed for a refused name; control still is
                now = on_the_reactor(followed, service)
                assert CONTROL in now and now <= {CONTROL, chat}, now
            # A leave, on this daemon or the other, still ends the subscription.
            ws.send_json({"type": "subscribe", "chat": chat, "after": None})
            assert ws.next_json()["type"] == "subscribed"
            assert blocking_call(services[leave_on].base_url, "DELETE",
                                 f"/api/chats/{chat}/members/me", token=token)[0] == 204
            _until(ws, {"type": "unsubscribed", "chat": chat})
            assert blocking_call(services[leave_on].base_url, "POST",
                                 f"/api/chats/{chat}/members", token=token)[0] == 200
            # A sign-out, on this daemon or the other, still closes the socket with 4001.
            assert blocking_call(services[sign_out_on].base_url, "DELETE", "/api/auth/token",
                                 token=token)[0] == 204
            assert _until_closed(ws) == 4001
        finally:
            ws.close()

    await threads.deferToThread(fuzz)
