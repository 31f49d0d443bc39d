"""Schemathesis against /api/openapi.json: over 1,000 cases, no 5xx, replies match the schema."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from chatire import openapi
from tests.fuzz.conftest import EXPLORE, SyncDaemon

EXAMPLES = 60  # per operation and mode: 20 of them, about 1,200 cases


@attrs.define
class Target:
    """The daemon under test, a signed-in user, and a chat of theirs."""

    daemon: SyncDaemon
    token: str
    chat: str
    cases: int = 0
    statuses: dict[int, int] = attrs.Factory(dict)


TARGET: list[Target] = []


@pytest.fixture(scope="module")
def target(fuzz_daemon: SyncDaemon) -> Iterator[Target]:
    _, token = fuzz_daemon.sign_up()
    status, body = fuzz_daemon.call("POST", "/api/chats", {"title": "fuzzed"}, token=token)
    assert status == 201
    chat = body["chat"]["uri"]
    fuzz_daemon.call("POST", f"/api/chats/{chat}/messages", {"message": "hello"}, token=token)
    TARGET.append(Target(fuzz_daemon, token, chat))
    yield TARGET[-1]


@pytest.fixture(scope="module")
def api_schema(target: Target) -> Any:
    return schemathesis.openapi.from_url(target.daemon.base_url + "/api/openapi.json")


#: Every operation of the document, known without a daemon; invalid input only for
#: those that take some (a body or parameters).
OPERATIONS = [
    pytest.param(method, path, mode, id=f"{mode.value}-{method}-{path}")
    for path, ops in openapi.build()["paths"].items() for method, op in ops.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "requestBody" in op or "parameters" in op
]


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS)
def test_the_api_holds_to_its_schema(api_schema: Any, target: Target, method: str, path: str,
                                     mode: GenerationMode) -> None:
    """Schemathesis' own checks (no 5xx, statuses, content types, bodies) on each reply."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not EXPLORE,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def fuzz(case: Any) -> None:
        token = target.token
        if method == "delete" and path == "/api/auth/token":
            _, token = target.daemon.sign_up()  # sign out a token of its own
        if case.path_parameters and "uri" in case.path_parameters and random.random() < 0.5:
            case.path_parameters["uri"] = target.chat  # a chat the user is in, half the time
        headers = {"Authorization": f"Bearer {token}"}
        query = case.query or {}
        if "after" in query and "before" in query:
            # Both at once: valid for each parameter, refused as a pair (the document
            # says so in words; OpenAPI has no way to say it in a schema).
            response = case.call(headers=headers)
            assert response.status_code in (400, 401, 403, 404), response.status_code
        elif set(query) - {p["name"] for p in operation.definition.raw.get("parameters", [])}:
            # Unknown query parameters are ignored, as by most HTTP APIs; schemathesis'
            # negative mode counts them as a violation the server should refuse.
            response = case.call(headers=headers)
            assert response.status_code in (200, 400, 401, 403, 404), response.status_code
        elif "cursor" in query:
            # Any string fits the parameter; only a `next` the server gave is a cursor
            # (the document says so in words): anything else is refused, never a 5xx.
            response = case.call(headers=headers)
            assert response.status_code in (200, 400, 401), response.status_code
        else:
            response = case.call_and_validate(headers=headers)
        target.cases += 1
        target.statuses[response.status_code] = target.statuses.get(response.status_code,
                                                                    0) + 1
        assert response.status_code < 500
        if method == "delete" and path.endswith("/members/me"):
            target.daemon.call("POST", f"/api/chats/{target.chat}/members",
                               token=target.token)

    fuzz()


def test_over_a_thousand_cases_ran(fuzz_daemon: SyncDaemon) -> None:
    if not TARGET:
        pytest.skip("the fuzzing test did not run in this session")
    target = TARGET[-1]
    print(f"\nschemathesis: {target.cases} cases, statuses {sorted(target.statuses.items())}")
    assert target.cases >= 1000
    assert "Traceback" not in fuzz_daemon.log.read_text(errors="replace")
    assert fuzz_daemon.call("GET", "/healthz")[0] == 200
