"""Every libpq URI form reaches PostgreSQL as written: the preflight and the pool alike."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from chatire.config import Config
from chatire.preflight import preflight
from chatire.store import store_from_url
from chatire.store.cursor import Cursor
from chatire.store.postgres import split_url
from tests.support.services import fresh_database

SOCKET_DIR = "/var/run/postgresql"

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_name() -> Iterator[str]:
    if not os.path.exists(os.path.join(SOCKET_DIR, ".s.PGSQL.5432")):
        message = f"no PostgreSQL socket in {SOCKET_DIR}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with fresh_database() as url:
        yield url.rsplit("/", 1)[1]


#: (form, URL template, whether it goes through the local socket)
FORMS = [
    ("empty host: the local socket, peer authentication", "postgresql:///{db}", True),
    ("host as a query parameter", "postgresql://root@/{db}?host=" + SOCKET_DIR, True),
    ("percent-encoded socket host", "postgresql://%2Fvar%2Frun%2Fpostgresql/{db}", True),
    ("postgres:// scheme over TCP", "postgres://root@127.0.0.1:5432/{db}", False),
    ("host list", "postgresql://127.0.0.1:5432,127.0.0.1:5432/{db}"
     "?target_session_attrs=read-write", False),
]

OPTIONS = "options=-c%20statement_timeout%3D4321&application_name=chatire%20test"


async def _settings(cur: Cursor) -> tuple[Any, ...]:
    await cur.execute("""SELECT current_setting('statement_timeout'),
                                current_setting('application_name'),
                                inet_server_addr() IS NULL""")
    row = cur.fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize(("form", "template", "local"), FORMS, ids=[f[0] for f in FORMS])
@pytest_twisted.ensureDeferred
async def test_url_form_reaches_the_server(db_name: str, form: str, template: str,
                                           local: bool) -> None:
    url = template.format(db=db_name)
    url += ("&" if "?" in url else "?") + OPTIONS + "&pool=2"
    preflight(Config(db=url))  # SystemExit with the reason if libpq refused the URL
    store = store_from_url(url, reactor)
    await store.start()
    try:
        timeout, name, over_socket = await store.engine.run(_settings)
    finally:
        await store.stop()
    assert (timeout, name) == ("4321ms", "chatire test")  # %20 arrived as a space
    assert over_socket is local


def test_only_pool_is_taken_out() -> None:
    assert split_url("postgresql:///chatire") == ("postgresql:///chatire", 4)
    assert split_url("postgresql:///chatire?pool=7") == ("postgresql:///chatire", 7)
    assert split_url("postgresql://u@/d?host=%2Frun%2Fpg&pool=2&options=-c%20a%3Db") == (
        "postgresql://u@/d?host=%2Frun%2Fpg&options=-c%20a%3Db", 2)
    assert split_url("postgresql://h1,h2:5433/d?pool=3&target_session_attrs=read-write") == (
        "postgresql://h1,h2:5433/d?target_session_attrs=read-write", 3)


@pytest.mark.parametrize("bad", ["x", "0", "-1", ""])
def test_a_bad_pool_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="pool"):
        split_url(f"postgresql:///chatire?pool={bad}")


KEEPALIVES = "keepalives=1&keepalives_idle=30&keepalives_interval=10&keepalives_count=3"


def test_application_name_is_added_only_when_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatire.store.postgres import connection_url

    monkeypatch.delenv("PGAPPNAME", raising=False)
    assert connection_url("postgresql:///chatire?pool=2") == (
        f"postgresql:///chatire?{KEEPALIVES}&application_name=chatire", 2)
    assert connection_url("postgresql://u@h/d?sslmode=require") == (
        f"postgresql://u@h/d?sslmode=require&{KEEPALIVES}&application_name=chatire", 4)
    own = "postgresql:///d?application_name=mine"
    assert connection_url(own) == (f"{own}&{KEEPALIVES}", 4)
    monkeypatch.setenv("PGAPPNAME", "from-env")
    assert connection_url("postgresql:///d") == (f"postgresql:///d?{KEEPALIVES}", 4)


def test_keepalives_are_added_only_where_the_url_sets_none() -> None:
    from chatire.store.postgres import connection_url

    url = ("postgresql://u@h/d?keepalives_idle=77&keepalives=0&keepalives_count=9"
           "&keepalives_interval=2&application_name=a")
    assert connection_url(url) == (url, 4)
    assert connection_url("postgresql://u@h/d?keepalives_idle=77&application_name=a") == (
        "postgresql://u@h/d?keepalives_idle=77&application_name=a&keepalives=1"
        "&keepalives_interval=10&keepalives_count=3", 4)


@pytest_twisted.ensureDeferred
async def test_pg_stat_activity_shows_chatire(db_name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's preflight and its pool alike connect as application_name=chatire."""
    import psycopg2

    from tests.support.services import PG_ADMIN

    monkeypatch.delenv("PGAPPNAME", raising=False)
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db_name + "?pool=2"
    seen: list[str] = []
    real_connect = psycopg2.connect

    def connect(dsn: str, **kwargs: Any) -> Any:
        connection = real_connect(dsn, **kwargs)
        with connection.cursor() as cur:
            cur.execute("SELECT application_name FROM pg_stat_activity WHERE pid = "
                        "pg_backend_pid()")
            seen.append(cur.fetchone()[0])
        return connection

    monkeypatch.setattr(psycopg2, "connect", connect)
    preflight(Config(db=url))
    monkeypatch.undo()
    assert seen == ["chatire"]
    store = store_from_url(url, reactor)
    await store.start()
    try:
        names = await store.engine.run(_names, db_name)
    finally:
        await store.stop()
    assert names and set(names) == {"chatire"}, names


async def _names(cur: Cursor, db_name: str) -> list[str]:
    await cur.execute("SELECT application_name FROM pg_stat_activity WHERE datname = %s",
                      (db_name,))
    return [row[0] for row in cur.fetchall()]
