"""Passwords stored as argon2id (OWASP parameters or stronger), tokens only as SHA-256 hex."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import pytest_twisted

from tests.support.client import Api
from tests.support.services import fresh_database

PHC = re.compile(r"\$argon2id\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)"
                 r"\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)")
PASSWORDS = ("correct horse battery", "ünïcödé pässwörd €", "x" * 1024)


def check_rows(users: list[tuple[str, str]], tokens: list[tuple[str, int]],
               dump: str, issued: dict[str, str]) -> None:
    """users: (username, password_hash); tokens: (token_hash, user_id); dump: every cell."""
    assert len(users) == len(PASSWORDS)
    for _name, stored in users:
        match = PHC.fullmatch(stored)
        assert match, stored
        version, m, t, p = (int(g) for g in match.groups()[:4])
        assert version == 19
        assert m >= 19456 and t >= 2 and p >= 1, stored  # OWASP's argon2id minimum
        assert len(match.group(5)) >= 22  # a salt of at least 16 bytes
    assert len({h for _, h in users}) == len(users)  # salted: no two hashes alike
    assert sorted(h for h, _ in tokens) == sorted(
        hashlib.sha256(t.encode()).hexdigest() for t in issued.values())
    for digest, _ in tokens:
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
    for password in PASSWORDS:
        assert password not in dump
    for token in issued.values():
        assert token not in dump


def _raw_files(folder: Path) -> bytes:
    """The bytes of the SQLite database and its side files."""
    return b"".join(p.read_bytes() for p in folder.glob("secrets.db*"))


async def _sign_up(api: Api) -> dict[str, str]:
    issued = {}
    for i, password in enumerate(PASSWORDS):
        user = await api.user(f"store{i}", password=password)
        issued[user.name] = user.token
    return issued


@pytest_twisted.ensureDeferred
async def test_sqlite_file_holds_no_password_or_token(make_daemon: Any, tmp_path: Path) -> None:
    path = tmp_path / "secrets.db"
    daemon = await make_daemon(db=f"sqlite:///{path}")
    issued = await _sign_up(Api(daemon.base_url))
    await daemon.stopService()
    with sqlite3.connect(path) as db:
        users = db.execute("SELECT username, password_hash FROM users").fetchall()
        tokens = db.execute("SELECT token_hash, user_id FROM tokens").fetchall()
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        dump = "\n".join(str(db.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
    check_rows(users, tokens, dump, issued)
    raw = _raw_files(tmp_path)
    for secret in (*PASSWORDS, *issued.values()):
        assert secret.encode() not in raw


@pytest.mark.postgres
@pytest_twisted.ensureDeferred
async def test_postgresql_holds_no_password_or_token(make_daemon: Any) -> None:
    with fresh_database() as url:
        daemon = await make_daemon(db=url)
        issued = await _sign_up(Api(daemon.base_url))
        await daemon.stopService()
        db = psycopg2.connect(url)
        try:
            with db.cursor() as cur:
                cur.execute("SELECT username, password_hash FROM users")
                users = cur.fetchall()
                cur.execute("SELECT token_hash, user_id FROM tokens")
                tokens = cur.fetchall()
                cur.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = 'public'")
                dump = ""
                for (table,) in cur.fetchall():
                    cur.execute(f'SELECT * FROM "{table}"')
                    dump += str(cur.fetchall())
        finally:
            db.close()
        check_rows(users, tokens, dump, issued)
