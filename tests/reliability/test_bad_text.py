"""Honest posters beside attackers who post lone surrogates and NULs, over HTTP and the socket.

The issue's case: one user's bad text failed the group commit of every post beside it
(hundreds of honest 500s, messages never stored). Here members send and follow over
their sockets and some also post over HTTP (members also edit, delete and react over
HTTP) while attackers in the same chats post bad text as fast as they can; every honest
send must be acknowledged, every attacker's post refused with `invalid`, and the store
must hold exactly the acknowledged messages, in the state the acknowledged changes made.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.reliability.cluster import cluster
from tests.reliability.workload import Workload
from tests.support.client import Api, Socket
from tests.support.daemons import sleep
from tests.support.services import fresh_database

BAD = ["\ud800", "\x00", "x\udfffy", "nul\x00 and \ud800"]


class Attacker:
    """A member of every chat who posts bad text over HTTP and its socket; counts replies."""

    def __init__(self, api: Api, token: str, chats: list[str]) -> None:
        self.api, self.token, self.chats = api, token, chats
        self.replies: dict[Any, int] = {}
        self.socket: Socket | None = None
        self._n = 0

    def _count(self, key: Any) -> None:
        self.replies[key] = self.replies.get(key, 0) + 1

    def _bodies(self) -> list[dict[str, Any]]:
        self._n += 1
        bad = BAD[self._n % len(BAD)]
        return [{"message": f"evil {bad}", "client_id": f"evil-{self._n}"},
                {"message": "evil", "client_id": f"evil{bad}{self._n}"}]

    async def round(self) -> None:
        """One burst: bad posts to every chat over HTTP and over the socket at once."""
        calls = []
        for chat in self.chats:
            for body in self._bodies():
                raw = json.dumps(body).encode()  # "\ud800" and "\u0000" as JSON escapes
                calls.append(defer.ensureDeferred(self.api.call(
                    "POST", f"/api/chats/{chat}/messages", raw=raw, token=self.token)))
                if self.socket is not None:
                    self.socket.send(json.dumps({"type": "send", "chat": chat, **body}).encode())
        for status, reply in await defer.gatherResults(calls):
            self._count((status, reply["error"]["code"] if status >= 400 else None))

    async def drain(self) -> None:
        """Count the socket's replies (error frames, and anything else)."""
        while self.socket is not None and self.socket.frames.pending:
            frame = await self.socket.next()
            self._count(("frame", frame["type"], frame.get("code")))


async def attack(urls: list[str], *, seconds: float = 1.5, rate: float = 60.0) -> None:
    """Run the workload beside two attackers; check the history and the replies."""
    workload = Workload(urls, clients=6, chats=2, chats_each=2, rate=rate)
    await workload.prepare()
    attackers = []
    for i in range(2):
        api = Api(urls[i % len(urls)])
        user = await api.user()
        for uri in workload.chat_uris:
            await workload.join(api, uri, user.token, user.id)
        attacker = Attacker(api, user.token, workload.chat_uris)
        attacker.socket = await Socket.open(api.base_url, user.token)
        attackers.append(attacker)
    await workload.connect()
    posters = workload.members[:2]  # these also post over HTTP, into the same history
    http_sent = 0

    async def post_over_http(n: int) -> None:
        member = posters[n % len(posters)]
        chat = member.chats[n % len(member.chats)]
        client_id = f"{member.name}-http-{n}"
        text = f"{client_id} honest"
        workload.history.invoke(member.name, chat, client_id, text=text)
        status, reply = await Api(urls[n % len(urls)]).call(
            "POST", f"/api/chats/{chat}/messages",
            {"message": text, "client_id": client_id}, token=member.token)
        if status in (200, 201):
            workload.history.ok(client_id, reply["message"]["seq"], reply["message"]["id"])
        else:
            workload.history.fail(client_id, reply["error"]["code"] if reply else str(status))

    workload.start_sending()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        honest = [defer.ensureDeferred(post_over_http(http_sent + k)) for k in range(2)]
        http_sent += 2
        await defer.gatherResults([*(defer.ensureDeferred(a.round()) for a in attackers),
                                   *honest])
        for a in attackers:
            await a.drain()
        await sleep(0.02)
    workload.stop_sending()
    await sleep(0.5)
    for a in attackers:
        await a.drain()
        assert a.socket is not None
        assert not a.socket.closed.called  # refused frames never close the socket
        await a.socket.close()
    report = await workload.finish()
    replies: dict[Any, int] = {}
    for a in attackers:
        for key, n in a.replies.items():
            replies[key] = replies.get(key, 0) + n
    print(f"\nbad text: {report.summary()} | http honest {http_sent} | attackers {replies}")
    assert report.clean, report.details
    assert report.failed == report.indeterminate == 0, report.summary()  # no honest failure
    assert report.ok == report.sends == workload.sent + http_sent
    stored = [m for chat in workload.chat_uris for m in workload.history.stored[chat]
              if m.kind == "message"]
    assert len(stored) == report.ok  # stored == confirmed: nothing lost, nothing twice
    # edits, deletes and reactions went on beside them; none without an answer
    assert report.changes == workload.changed and report.changes_ok > 10, report.summary()
    assert report.changes_indeterminate == 0, report.summary()
    assert set(replies) <= {(400, "invalid"), ("frame", "error", "invalid")}, replies
    assert replies.get((400, "invalid"), 0) > 10 and replies.get(("frame", "error",
                                                                  "invalid"), 0) > 10


@pytest_twisted.ensureDeferred
async def test_bad_text_beside_honest_posters_on_sqlite(make_daemon: Any) -> None:
    daemon = await make_daemon()
    await attack([daemon.base_url])


@pytest.mark.postgres
@pytest_twisted.ensureDeferred
async def test_bad_text_beside_honest_posters_on_postgresql(make_daemon: Any) -> None:
    with fresh_database() as db:
        daemon = await make_daemon(db=db)
        await attack([daemon.base_url])
        await daemon.stopService()


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest.mark.timeout(90)
@pytest_twisted.ensureDeferred
async def test_bad_text_beside_honest_posters_on_two_daemons(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        await attack(c.urls)
        for i in range(len(c.daemons)):
            assert "Traceback" not in c.log(i) and "Unhandled" not in c.log(i), c.log(i)[-3000:]
