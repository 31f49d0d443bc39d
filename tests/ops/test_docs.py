"""The docs cannot drift: deployment.md's options table is generated, its data copy recipe
runs, protocol.md names every route, frame, close code, error code and option, and no
link leads out of the repository."""

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

from chatire import errors, ws
from chatire.admin import options_table
from chatire.api import ChatireAPI
from chatire.config import FLAG_OPTIONS, MULTI_OPTIONS, SCALAR_OPTIONS
from chatire.schemas import FRAMES
from chatire.tap import Options
from tests.support.client import Api, User
from tests.support.daemons import REPO
from tests.support.services import fresh_database

DOC = REPO / "docs" / "deployment.md"
PROTOCOL = REPO / "docs" / "protocol.md"


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
    in_twistd = {p[0] for p in options.optParameters} | {p[0] for p in options.optFlags} | {
        name.removeprefix("opt_").replace("_", "-") for name in dir(options)
        if name.startswith("opt_") and name not in ("opt_help", "opt_version")}
    assert set(documented) == in_twistd
    assert in_twistd == ({n for n, *_ in SCALAR_OPTIONS} | {n for n, _ in MULTI_OPTIONS}
                         | {n for n, _ in FLAG_OPTIONS})


def _served_routes() -> set[str]:
    """``METHOD /path`` of every Klein route, path parameters written ``{name}``."""
    served = set()
    for rule in ChatireAPI.router._url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if path == "/{__rest__}":
            continue  # the branch of "/" (the UI's files)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add(f"{method} {path}")
    return served


def test_the_protocol_doc_names_every_route() -> None:
    text = PROTOCOL.read_text()
    served = _served_routes()
    assert {"GET /api/config", "GET /ws", "POST /api/chats/{uri}/messages"} <= served
    missing = sorted(route for route in served if f"`{route}`" not in text)
    assert not missing, f"docs/protocol.md does not describe {missing}"


def _server_frame_types() -> set[str]:
    """Every ``{"type": ...}`` the daemon writes to a socket, read from its source."""
    found: set[str] = set()
    for module in ("ws.py", "delivery.py", "frames.py"):
        source = (REPO / "chatire" / module).read_text()
        found |= set(re.findall(r'\{"type": "([a-z_]+)"', source))
    return found


def test_the_protocol_doc_names_every_frame_type() -> None:
    text = PROTOCOL.read_text()
    server = _server_frame_types()
    assert {"ready", "subscribed", "unsubscribed", "message", "error", "typing",
            "sent"} <= server
    missing = sorted(kind for kind in set(FRAMES) | server
                     if f'{{"type": "{kind}"' not in text)
    assert not missing, f"docs/protocol.md does not describe the frames {missing}"


def test_the_protocol_doc_names_every_close_and_error_code() -> None:
    text = PROTOCOL.read_text()
    sources = "\n".join(p.read_text() for p in (REPO / "chatire").rglob("*.py"))
    closes = {value for name, value in vars(ws).items() if name.startswith("CLOSE_")}
    closes |= {int(code) for code in re.findall(r"\bclose\((\d{4})\b", sources)}
    closes.add(1009)  # Autobahn's, past --max-frame-bytes
    assert {1001, 1009, 4001, 4008} <= closes
    missing: list[object] = sorted(code for code in closes if f"`{code}`" not in text)
    codes = {cls.code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.ChatireError)}
    missing += sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, f"docs/protocol.md does not describe {missing}"


def test_the_protocol_doc_names_every_daemon_option() -> None:
    # Read from chatire.config, so an option added there must be added to the doc too.
    text = PROTOCOL.read_text()
    options = ([name for name, *_ in SCALAR_OPTIONS] + [name for name, _ in MULTI_OPTIONS]
               + [name for name, _ in FLAG_OPTIONS])
    missing = sorted(name for name in options if f"`--{name}`" not in text)
    assert not missing, f"docs/protocol.md does not mention {missing}"


def _anchors(markdown: str) -> set[str]:
    """The anchors of a Markdown file's headings, as GitHub spells them."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_no_link_leads_out_of_the_repository() -> None:
    files = [p for p in REPO.rglob("*.md")
             if not any(part.startswith(".") or part.endswith(".egg-info")
                        or part in ("node_modules", "build", "dist")
                        for part in p.relative_to(REPO).parts)]
    assert PROTOCOL in files and REPO / "README.md" in files
    bad = []
    for source in files:
        text = source.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto: ...: not a file
            path, _, anchor = target.partition("#")
            resolved = (source.parent / path).resolve() if path else source
            inside = resolved == REPO or REPO in resolved.parents
            if not inside or not resolved.is_file():
                bad.append(f"{source.relative_to(REPO)}: {target}")
            elif anchor and resolved.suffix == ".md" \
                    and anchor not in _anchors(resolved.read_text()):
                bad.append(f"{source.relative_to(REPO)}: {target} (no such heading)")
    assert not bad, bad


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
    assert (await bob.call("PUT", f"/api/chats/{uri}/messages/2/reactions/ok"))[0] == 200
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
            (2, 'line one, "quoted"\nline two', None), (3, "with a client id", "c-1")]
        status, events = await api.call("GET", f"/api/chats/{uri}/events", token=bob.token)
        assert [e["kind"] for e in events["events"]] == ["join", "message", "message", "react"]
        assert page["messages"][0]["reactions"] == [{"emoji": "ok", "count": 1,
                                                     "users": [bob.id]}]
        again = await User(api, "bob", bob.token, bob.id).post(
            uri, "with a client id", client_id="c-1")
        assert again["seq"] == 3  # the idempotency key survived the move
        fresh = await User(api, "alice", alice.token, alice.id).post(uri, "after")
        assert (fresh["seq"], fresh["id"]) == (5, 5)  # no id reused (events take ids too)
        carol = await api.user("carol")
        assert carol.id == 3
        status, body = await api.call("POST", "/api/chats", {"title": "new"},
                                      token=carol.token)
        assert status == 201
        await new.stopService()


def _backup_recipes() -> tuple[str, str]:
    """The two sh blocks of the Backups section: the PostgreSQL dump, then the restore."""
    text = DOC.read_text()
    section = text[text.index("## Backups"):text.index("## Upgrading")]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) >= 2, "the Backups section has lost its dump and restore blocks"
    return blocks[0], blocks[1]


@pytest.mark.postgres
@pytest_twisted.ensureDeferred
async def test_the_backup_and_restore_recipes_run_as_written(make_daemon: Any,
                                                             tmp_path: Path) -> None:
    import secrets
    from urllib.parse import urlsplit

    import psycopg2

    from tests.support.services import PG_ADMIN

    backup, restore = _backup_recipes()
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"

    def bash(script: str, **env: str) -> Any:
        return deferToThreadPool(reactor, reactor.getThreadPool(), lambda: subprocess.run(
            ["bash", "-c", script], env={**os.environ, "PATH": path, **env}, cwd=tmp_path,
            capture_output=True, text=True, timeout=60))

    server = PG_ADMIN.rsplit("/", 1)[0]
    new = f"chatire_restored_{secrets.token_hex(4)}"
    with fresh_database() as db:
        daemon = await make_daemon(db=db)
        api = Api(daemon.base_url)
        alice = await api.user("alice")
        uri = await alice.new_chat()
        await alice.post(uri, "kept by the backup")
        await daemon.stopService()

        backups = tmp_path / "backups"
        backups.mkdir()
        result = await bash(backup, DB=db, BACKUPS=str(backups))
        assert result.returncode == 0, result.stdout + result.stderr
        [dump] = list(backups.glob("chatire-*.dump"))
        assert dump.stat().st_mode & 0o777 == 0o600  # the dump holds every message

    try:  # the source database is gone: the restore is all there is
        result = await bash(restore, DUMP=str(dump), SERVER=server, NEW=new,
                            OWNER=urlsplit(PG_ADMIN).username or "postgres")
        assert result.returncode == 0, result.stdout + result.stderr
        restored = await make_daemon(db=f"{server}/{new}")
        api = Api(restored.base_url)
        status, page = await api.call("GET", f"/api/chats/{uri}/messages", token=alice.token)
        assert status == 200, page
        assert [m["message"] for m in page["messages"]] == ["kept by the backup"]
        await restored.stopService()
    finally:
        admin = psycopg2.connect(PG_ADMIN)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{new}" WITH (FORCE)')
        admin.close()


def test_the_deployment_doc_walks_through_the_operations_points() -> None:
    """Issue 19, 9 to 11: each behaviour an operator meets is described where they look."""
    text = DOC.read_text()
    for needed in ("## Signals", "SIGHUP", "SIGUSR1", "logrotate", "`--logfile`",
                   "Connection: close", "never a reset", "chatire --version",
                   "chatire_build_info", "GET /livez", "GET /healthz", "GET /ws 101 close",
                   "ACCESS_REFUSED", "application_name=chatire", "psycopg2-binary",
                   "--no-binary psycopg2", "MemoryDenyWriteExecute=yes",
                   "IPAddressAllow=localhost", "systemctl edit chatire.service",
                   "createdb", "umask 077"):
        assert needed in text, needed
