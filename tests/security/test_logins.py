"""Sign-in limits per (name, address) and per address, shared by daemons through the store;
X-Forwarded-For only from a trusted proxy; a flood of hash work refused past its bound."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.support.client import Api
from tests.support.services import fresh_database

TOKEN = "/api/auth/token"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


async def sign_in(api: Api, name: str, password: str, address: str | None) -> int:
    headers = {} if address is None else {"X-Forwarded-For": address}
    status, _ = await api.call("POST", TOKEN, {"username": name, "password": password},
                               headers=headers)
    return status


@pytest_twisted.ensureDeferred
async def test_daemons_share_the_counts_and_the_real_user_gets_in_from_elsewhere(
        make_daemon: Any, pg_url: str) -> None:
    options = {"db": pg_url, "trusted_proxy": ("127.0.0.1",)}
    one, two = Api((await make_daemon(**options)).base_url), Api(
        (await make_daemon(**options)).base_url)
    victim = await one.user(password="victim's own words")
    attacker = "203.0.113.9"
    for i in range(5):  # five guesses, spread over both daemons
        assert await sign_in((one, two)[i % 2], victim.name, f"guess {i}", attacker) == 401
    for api in (one, two):  # the attacker is locked out on both, even with the right one
        assert await sign_in(api, victim.name, "victim's own words", attacker) == 429
        assert 1 <= int(api.last_headers.getRawHeaders("retry-after")[0]) <= 60
    # The victim, from their own address, signs in on either daemon.
    for api in (one, two):
        assert await sign_in(api, victim.name, "victim's own words", "198.51.100.7") == 200


@pytest_twisted.ensureDeferred
async def test_one_address_guessing_over_20_accounts_is_limited_across_daemons(
        make_daemon: Any, pg_url: str) -> None:
    options = {"db": pg_url, "trusted_proxy": ("127.0.0.1",)}
    apis = [Api((await make_daemon(**options)).base_url) for _ in range(2)]
    users = [await apis[0].user() for _ in range(20)]
    statuses = []
    for i in range(60):  # 3 guesses a name: never 5 on one, 60 from one address
        statuses.append(await sign_in(apis[i % 2], users[i % 20].name, f"guess {i}",
                                      "203.0.113.20"))
    assert statuses[:30] == [401] * 30
    assert statuses[30:] == [429] * 30
    # Another address is not hurt; nor is a user already signed in.
    assert await sign_in(apis[1], users[0].name, "correct horse", "198.51.100.20") == 200
    assert (await users[1].call("GET", "/api/me"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
        make_daemon: Any) -> None:
    api = Api((await make_daemon()).base_url)
    user = await api.user(password="my real password")
    for i in range(5):  # a different forged address each time: all are 127.0.0.1
        assert await sign_in(api, user.name, "wrong", f"192.0.2.{i}") == 401
    assert await sign_in(api, user.name, "my real password", "198.51.100.1") == 429


@pytest_twisted.ensureDeferred
async def test_a_trusted_proxy_is_believed_right_most_untrusted_address_first(
        make_daemon: Any) -> None:
    api = Api((await make_daemon(trusted_proxy=("127.0.0.1", "10.0.0.0/8"))).base_url)
    user = await api.user(password="my real password")
    for i in range(5):  # the client forges the left of the header; the proxies append
        assert await sign_in(api, user.name, "wrong", f"192.0.2.{i}, 203.0.113.5, 10.1.2.3") \
            == 401
    assert await sign_in(api, user.name, "my real password", "203.0.113.5") == 429
    assert await sign_in(api, user.name, "my real password", "203.0.113.5, 10.9.9.9") == 429
    assert await sign_in(api, user.name, "my real password", "203.0.113.6, 10.1.2.3") == 200


@pytest_twisted.ensureDeferred
async def test_taken_name_sign_ups_count_against_the_address(make_daemon: Any) -> None:
    api = Api((await make_daemon(trusted_proxy=("127.0.0.1",),
                                 login_failures_per_address=3)).base_url)
    taken = await api.user()
    prober = {"X-Forwarded-For": "203.0.113.30"}
    for _ in range(3):
        status, body = await api.call("POST", "/api/auth/register",
                                      {"username": taken.name, "password": "probe probe"},
                                      headers=prober)
        assert status == 409
    status, body = await api.call("POST", "/api/auth/register",
                                  {"username": "fresh_name", "password": "probe probe"},
                                  headers=prober)
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert await sign_in(api, taken.name, "correct horse", "203.0.113.30") == 429
    status, _ = await api.call("POST", "/api/auth/register",
                               {"username": "fresh_name", "password": "probe probe"},
                               headers={"X-Forwarded-For": "198.51.100.30"})
    assert status == 201


@pytest.mark.parametrize("password, why", [
    ("password", "common"), ("12345678", "common"), ("Password1", "common"),
    ("iloveyou", "common"), (" " * 8, "white space"), ("\t\n " * 4, "control characters"),
    ("short", "8 to 1024"), ("p" * 1025, "8 to 1024"),
])
@pytest_twisted.ensureDeferred
async def test_weak_passwords_are_refused_with_the_reason(make_daemon: Any, password: str,
                                                          why: str) -> None:
    api = Api((await make_daemon()).base_url)
    status, body = await api.call("POST", "/api/auth/register",
                                  {"username": "weak", "password": password})
    assert status == 400 and body["error"]["code"] == "invalid"
    assert why in body["error"]["message"]
    assert password == "password" or password not in body["error"]["message"]  # no echo
    status, _ = await api.call("POST", "/api/auth/register",
                               {"username": "weak", "password": "a phrase of mine"})
    assert status == 201


@pytest_twisted.ensureDeferred
async def test_a_flood_of_unknown_names_is_refused_past_the_bound_and_a_real_user_gets_in(
        make_daemon: Any) -> None:
    # Failures per address are not limited here: the hash queue's bound alone refuses.
    daemon = await make_daemon(trusted_proxy=("127.0.0.1",), login_failures_per_address=0)
    api = Api(daemon.base_url)
    user = await api.user(password="my real password")
    flood = [defer.ensureDeferred(api.call("POST", TOKEN,
                                           {"username": f"nobody{i}", "password": "guess"},
                                           headers={"X-Forwarded-For": "203.0.113.66"}))
             for i in range(200)]
    real = await sign_in(api, user.name, "my real password", "198.51.100.66")
    results = await defer.gatherResults(flood)
    assert real == 200
    refused = [body for status, body in results if status == 429]
    assert len(refused) >= 100, [status for status, _ in results]
    assert all("at once" in body["error"]["message"] for body in refused)
    assert all(body["error"]["code"] == "rate_limited" for body in refused)
    assert {status for status, _ in results} <= {401, 429}
