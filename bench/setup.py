"""HTTP set-up of a benchmark: users, tokens, chats and memberships (PROTOCOL.md's API)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp

PASSWORD = "bench-password-1"


@dataclass(frozen=True)
class Account:
    """A signed-in user of the benchmark."""

    user_id: int
    username: str
    token: str


class Api:
    """Calls to one daemon's HTTP API over one keep-alive session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def call(self, method: str, path: str, body: Any = None,
                   token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.base_url + path, json=body,
                                        headers=headers) as reply:
            data = await reply.json() if reply.content_length != 0 else None
            return reply.status, data

    async def account(self, username: str) -> Account:
        status, body = await self.call("POST", "/api/auth/register",
                                       {"username": username, "password": PASSWORD})
        if status != 201:
            raise RuntimeError(f"register {username}: {status} {body}")
        status, body = await self.call("POST", "/api/auth/token",
                                       {"username": username, "password": PASSWORD})
        if status != 200:
            raise RuntimeError(f"sign in {username}: {status} {body}")
        return Account(body["user"]["id"], username, body["token"])

    async def new_chat(self, owner: Account, title: str) -> str:
        status, body = await self.call("POST", "/api/chats", {"title": title}, owner.token)
        if status != 201:
            raise RuntimeError(f"create chat: {status} {body}")
        return str(body["chat"]["uri"])

    async def join(self, account: Account, uri: str) -> None:
        status, body = await self.call("POST", f"/api/chats/{uri}/members", None, account.token)
        if status != 200:
            raise RuntimeError(f"join: {status} {body}")


async def _bounded(jobs: list[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Any) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def populate(base_url: str, users: int, chats: int) -> tuple[list[Account], list[str]]:
    """Register ``users`` users, create ``chats`` chats and make every user a member of all."""
    prefix = "b" + secrets.token_hex(3)
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as session:
        api = Api(session, base_url)
        accounts: list[Account] = await _bounded(
            [api.account(f"{prefix}_{i}") for i in range(users)], 8)
        owner = accounts[0]
        uris: list[str] = await _bounded(
            [api.new_chat(owner, f"bench {i}") for i in range(chats)], 16)
        await _bounded([api.join(account, uri) for account in accounts[1:] for uri in uris], 32)
    return accounts, uris


def populate_sync(base_url: str, users: int, chats: int) -> tuple[list[Account], list[str]]:
    """populate() on a loop of its own (the caller forks workers afterwards)."""
    return asyncio.run(populate(base_url, users, chats))
