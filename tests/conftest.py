"""Fixtures shared by every suite: stores on SQLite and PostgreSQL, a running daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor

from chatire.config import Config
from tests.support.client import Api
from tests.support.services import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each API test runs once per store: a fresh SQLite file, a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chatire.db'}"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
def config(db_url: str) -> Config:
    return Config(listen=("tcp:0:interface=127.0.0.1",), db=db_url, send_rate=0)


async def start_daemon(config: Config, bus: Any = None) -> Any:
    """The daemon (chatire.daemon.build) started on an ephemeral port in this process's
    reactor; its ChatireService is returned, the tree is its parent."""
    from chatire.daemon import build, daemon_of

    top = build(config, reactor, bus=bus)
    service = daemon_of(top)
    top.startService()
    await service.ready
    service.base_url = f"http://127.0.0.1:{service.ports[0].getHost().port}"
    return service


async def stop_daemon(service: Any) -> None:
    """Stop what start_daemon started and still runs (a test may have stopped the daemon)."""
    for part in reversed(list(service.parent)):
        if part.running:
            await part.stopService()


@pytest_twisted.async_yield_fixture
async def daemon(config: Config) -> AsyncIterator[Any]:
    service = await start_daemon(config)
    yield service
    await stop_daemon(service)


@pytest_twisted.async_yield_fixture
async def make_daemon(tmp_path: Path) -> AsyncIterator[Any]:
    """Start daemons with chosen options (SQLite unless ``db`` is given); all stopped after."""
    started: list[Any] = []

    async def make(**options: Any) -> Any:
        base = Config(listen=("tcp:0:interface=127.0.0.1",), send_rate=0,
                      db=f"sqlite:///{tmp_path / f'chatire{len(started)}.db'}")
        service = await start_daemon(attrs.evolve(base, **options))
        started.append(service)
        return service

    yield make
    for service in started:
        await stop_daemon(service)


@pytest.fixture
def api(daemon: Any) -> Api:
    return Api(daemon.base_url)


def _tree_changes(repo: Path) -> set[str] | None:
    """`git status` of the checkout, one entry a line; None outside a git checkout."""
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return None
    done = subprocess.run([git, "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                          capture_output=True, text=True, check=False)
    return set(done.stdout.splitlines()) if done.returncode == 0 else None


@pytest.fixture(scope="session", autouse=True)
def tree_stays_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests write only to temporary directories: the run leaves `git status` as it found it."""
    repo = Path(__file__).resolve().parents[1]
    before = _tree_changes(repo)
    yield
    after = _tree_changes(repo)
    if before is None or after is None:
        return
    # `make docs` asks for the screenshot on purpose (CHATIRE_SCREENSHOT), and `make soak`
    # and `make ha` add their rows to docs/reliability.md (--soak, --ha).
    wanted = {Path(p).resolve() for p in [os.environ.get("CHATIRE_SCREENSHOT")] if p}
    if (request.config.getoption("soak", default=False)
            or request.config.getoption("ha", default=False)):
        wanted.add((repo / "docs" / "reliability.md").resolve())
    changed = {entry for entry in after - before
               if Path(repo, entry[3:]).resolve() not in wanted}
    if changed:
        pytest.fail(f"the tests changed the source tree: {sorted(changed)}")
