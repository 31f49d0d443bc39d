"""Bulk-load a long history (bench.history) into a daemon's store, then check it and size it.

The daemon may be running: it caches no seq, and the chat has no subscriber yet.
SQLite gets one ``BEGIN IMMEDIATE`` transaction on the WAL file the daemon has open;
PostgreSQL one transaction of ``COPY``s, then ``ANALYZE`` (as autovacuum would do for
tables grown by this much, so the planner sees their real size).
"""

from __future__ import annotations

import io
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2

from bench.history import EVENT_COLUMNS, MESSAGE_COLUMNS, REACTION_COLUMNS, History

#: The chat's history starts this long before now (its chat, users and first joins
#: are moved back to just before it).
SPAN = timedelta(days=60)
TABLES = ("messages", "events", "reactions")


@dataclass
class Loaded:
    """What one load wrote, and how long building and writing took."""

    chat_id: int
    last_seq: int
    kinds: dict[str, int]
    reactions: int
    build_seconds: float
    write_seconds: float
    checks: dict[str, Any] = field(default_factory=dict)


class _Db:
    """One connection to the store, ``%s`` placeholders on both dialects."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite:")
        self.conn: Any
        if self.sqlite:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30,
                                        isolation_level=None)
        else:
            self.conn = psycopg2.connect(url.split("?")[0])
        self.cur = self.conn.cursor()

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.sqlite:
            sql = sql.replace("%s", "?")
            params = [_sqlite_value(v) for v in params]
        self.cur.execute(sql, params)
        return list(self.cur.fetchall()) if self.cur.description else []

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        return self.run(sql, params)[0]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.sqlite:
            marks = ", ".join("?" * len(columns))
            self.cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                                 ([_sqlite_value(v) for v in row] for row in rows))
            return
        text = io.StringIO("".join(",".join(_csv(v) for v in row) + "\n" for row in rows))
        self.cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)",
                             text)

    def close(self) -> None:
        self.conn.close()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # as chatire.store.sqlite stores times
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def _csv(value: Any) -> str:
    """One field of PostgreSQL's CSV: unquoted empty is NULL, a quoted "" the empty text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return '"' + text.replace('"', '""') + '"'


@contextmanager
def _connected(url: str) -> Iterator[_Db]:
    db = _Db(url)
    try:
        yield db
    finally:
        db.close()


def load(url: str, uri: str, last_seq: int, seed: int = 12) -> Loaded:
    """Give the chat ``uri`` (made through the API, members joined) seqs up to ``last_seq``."""
    with _connected(url) as db:
        chat_id, owner, first_seq = db.one(
            "SELECT id, owner_id, last_seq + 1 FROM chats WHERE uri = %s", (uri,))
        members = [int(r[0]) for r in db.run(
            "SELECT user_id FROM members WHERE chat_id = %s ORDER BY user_id", (chat_id,))]
        if db.sqlite:
            db.run("BEGIN IMMEDIATE")
            first_id = int(db.one(
                """SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'),
                                       0),
                              coalesce((SELECT max(id) FROM messages), 0),
                              coalesce((SELECT max(id) FROM events), 0)) + 1""")[0])
        else:
            first_id = int(db.one("SELECT nextval(pg_get_serial_sequence('messages', 'id'))")[0])
        started = time.monotonic()
        start = datetime.now(UTC) - SPAN
        history = History(int(chat_id), int(owner), members, int(first_seq), first_id, seed)
        history.clock = start
        rows = history.write(last_seq)
        built = time.monotonic()
        # The chat, its users and its first joins came just before the history.
        before = start - timedelta(minutes=1)
        db.run("UPDATE users SET created_at = %s", (before,))
        db.run("UPDATE chats SET created_at = %s WHERE id = %s", (before, chat_id))
        db.run("UPDATE members SET joined_at = %s WHERE chat_id = %s", (before, chat_id))
        db.run("UPDATE events SET created_at = %s WHERE chat_id = %s", (before, chat_id))
        db.insert("messages", MESSAGE_COLUMNS, rows.messages)
        db.insert("events", EVENT_COLUMNS, rows.events)
        db.insert("reactions", REACTION_COLUMNS, rows.reactions)
        for user, (joined, read_seq) in rows.rejoined.items():
            db.run("UPDATE members SET joined_at = %s, read_seq = %s "
                   "WHERE chat_id = %s AND user_id = %s", (joined, read_seq, chat_id, user))
        db.run("UPDATE chats SET last_seq = %s, last_activity_at = %s WHERE id = %s",
               (last_seq, rows.last_at or before, chat_id))
        if db.sqlite:
            db.run("UPDATE sqlite_sequence SET seq = %s WHERE name = 'messages'",
                   (rows.last_id,))
            db.run("COMMIT")
        else:
            db.run("SELECT setval(pg_get_serial_sequence('messages', 'id'), %s)",
                   (rows.last_id,))
            db.conn.commit()
            db.conn.autocommit = True
            db.run(f"ANALYZE {', '.join(TABLES)}")
        written = time.monotonic()
        return Loaded(int(chat_id), last_seq, dict(rows.kinds), len(rows.reactions),
                      round(built - started, 2), round(written - built, 2),
                      check(db, int(chat_id), last_seq))


def check(db: _Db, chat_id: int, last_seq: int) -> dict[str, Any]:
    """What the daemon guarantees of a chat's rows, read back: raises if one fails."""
    entries, distinct, low, high, ids = db.one(
        """SELECT count(*), count(DISTINCT seq), min(seq), max(seq), count(DISTINCT id) FROM (
               SELECT seq, id FROM messages WHERE chat_id = %s
               UNION ALL SELECT seq, id FROM events WHERE chat_id = %s) t""",
        (chat_id, chat_id))
    stored_last = db.one("SELECT last_seq FROM chats WHERE id = %s", (chat_id,))[0]
    max_id = db.one("""SELECT max(id) FROM (SELECT id FROM messages UNION ALL
                                            SELECT id FROM events) t""")[0]
    if db.sqlite:
        next_from = db.one("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")[0]
    else:
        next_from = db.one("SELECT last_value FROM pg_sequences "
                           "WHERE sequencename = 'messages_id_seq'")[0]
    checks = {"entries": entries, "gap_free": entries == distinct == high == last_seq
              and low == 1, "last_seq": stored_last == last_seq,
              "ids_unique": ids == entries, "id_sequence_past": int(next_from) >= int(max_id)}
    failed = [name for name, ok in checks.items() if ok is False]
    if failed:
        raise RuntimeError(f"the loaded chat breaks {failed}: {checks}")
    return checks


def sizes(url: str, chat_id: int) -> dict[str, int]:
    """The chat's rows (their bytes as stored) and the three tables with their indexes, KiB."""
    with _connected(url) as db:
        if db.sqlite:
            rows = db.one("""SELECT sum(payload) FROM dbstat WHERE name IN (%s, %s, %s)""",
                          TABLES)[0]
            total = db.one("""SELECT sum(pgsize) FROM dbstat WHERE name IN (
                                  SELECT name FROM sqlite_master WHERE tbl_name IN (%s, %s, %s))""",
                           TABLES)[0]
        else:
            rows = sum(int(db.one(f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t "
                                  "WHERE chat_id = %s", (chat_id,))[0]) for table in TABLES)
            total = db.one("SELECT sum(pg_total_relation_size(c)) FROM unnest(%s::regclass[]) c",
                           (list(TABLES),))[0]
    return {"rows_kib": int(rows or 0) // 1024, "tables_kib": int(total or 0) // 1024}
