"""docs/deployment.md cannot drift: its options table is generated, its data copy recipe runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool

from chatire.admin import options_table
from chatire.config import MULTI_OPTIONS, SCALAR_OPTIONS
from chatire.tap import Options
from tests.support.client import Api, User
from tests.support.daemons import REPO
from tests.support.services import fresh_database

DOC = REPO / "docs" / "deployment.md"


def test_the_options_table_is_the_generated_one() -> None:
    text = DOC.read_text()
    match = re.search(r"<!-- options:begin -->\n(.*?)<!-- options:end -->", text, re.DOTALL)
    assert match, "docs/deployment.md has lost its options markers"
    assert match.group(1) == options_table(), \
        "regenerate it: python -m chatire options-doc"


def test_every_daemon_option_is_documented_once() -> None:
    documented = re.findall(r"^\| `--([a-z-]+)` \|", DOC.read_text(), re.MULTILINE)
    assert len(documented) == len(set(documented))
    options = Options()
    in_twistd = {p[0] for p in options.optParameters} | {
        name.removeprefix("opt_").replace("_", "-") for name in dir(options)
        if name.startswith("opt_") and name not in ("opt_help", "opt_version")}
    assert set(documented) == in_twistd
    assert in_twistd == {n for n, *_ in SCALAR_OPTIONS} | {n for n, _ in MULTI_OPTIONS}


def _copy_recipe() -> str:
    text = DOC.read_text()
    section = text[text.index("### Copy the data"):]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return block.group(1)


@pytest.mark.postgres
@pytest_twisted.ensureDeferred
async def test_the_sqlite_to_postgresql_recipe_keeps_everything(make_daemon: Any,
                                                                 tmp_path: Path) -> None:
    source = tmp_path / "old.db"
    old = await make_daemon(db=f"sqlite:///{source}")
    api = Api(old.base_url)
    alice = await api.user("alice")
    bob = await api.user("bob")
    uri = await alice.new_chat('a "title", with a comma')
    await bob.join(uri)
    await alice.post(uri, 'line one, "quoted"\nline two')
    await bob.post(uri, "with a client id", client_id="c-1")
    await old.stopService()

    with fresh_database() as target:
        env = {**os.environ, "SRC": str(source), "DST": target,
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        result = await deferToThreadPool(
            reactor, reactor.getThreadPool(),
            lambda: subprocess.run(["bash", "-c", _copy_recipe()], env=env, cwd=tmp_path,
                                   capture_output=True, text=True, timeout=60))
        assert result.returncode == 0, result.stdout + result.stderr

        new = await make_daemon(db=target)
        api = Api(new.base_url)
        status, body = await api.call("GET", "/api/me", token=alice.token)  # still signed in
        assert status == 200 and body["user"]["id"] == alice.id
        status, body = await api.call("POST", "/api/auth/token",
                                      {"username": "bob", "password": "correct horse"})
        assert status == 200
        status, page = await api.call("GET", f"/api/chats/{uri}/messages", token=bob.token)
        assert status == 200
        assert [(m["seq"], m["message"], m["client_id"]) for m in page["messages"]] == [
            (1, 'line one, "quoted"\nline two', None), (2, "with a client id", "c-1")]
        again = await User(api, "bob", bob.token, bob.id).post(
            uri, "with a client id", client_id="c-1")
        assert again["seq"] == 2  # the idempotency key survived the move
        fresh = await User(api, "alice", alice.token, alice.id).post(uri, "after")
        assert (fresh["seq"], fresh["id"]) == (3, 3)  # no id reused
        carol = await api.user("carol")
        assert carol.id == 3
        status, body = await api.call("POST", "/api/chats", {"title": "new"},
                                      token=carol.token)
        assert status == 201
        await new.stopService()
