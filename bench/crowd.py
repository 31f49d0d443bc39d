"""Many users, tokens, chats and memberships written straight into a PostgreSQL store (the
presence, read and subscription scenarios need thousands; the API would take minutes)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

import psycopg2

from bench.setup import Account


def crowd(db: str, users: int, chats: int, members: Sequence[tuple[int, int]],
          last_seq: int = 0) -> tuple[list[Account], list[str]]:
    """``users`` users with a token each, ``chats`` chats (owned by the first user, whose
    last seq is ``last_seq``: read marks up to it are kept) and the (chat index, user index)
    memberships; as the daemon would have stored them, in one transaction."""
    prefix = "c" + secrets.token_hex(3)
    names = [f"{prefix}_{i}" for i in range(users)]
    tokens = [secrets.token_urlsafe(32) for _ in range(users)]
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in tokens]
    uris = [secrets.token_urlsafe(18) for _ in range(chats)]
    conn = psycopg2.connect(db.split("?")[0])
    try:
        with conn, conn.cursor() as cur:
            cur.execute("""INSERT INTO users (username, display_name, password_hash, created_at)
                           SELECT n, n, '!', now() FROM unnest(%s::text[]) WITH ORDINALITY u(n, i)
                            ORDER BY i RETURNING id""", (names,))
            ids = [int(row[0]) for row in cur.fetchall()]
            cur.execute("""INSERT INTO tokens (token_hash, user_id, expires_at)
                           SELECT h, u, now() + interval '1 day'
                             FROM unnest(%s::text[], %s::bigint[]) t(h, u)""", (hashes, ids))
            cur.execute("""INSERT INTO chats (uri, title, owner_id, created_at, last_seq,
                                              last_activity_at)
                           SELECT c, 'crowd', %s, now(), %s, now()
                             FROM unnest(%s::text[]) WITH ORDINALITY x(c, i)
                            ORDER BY i RETURNING id""", (ids[0], last_seq, uris))
            chat_ids = [int(row[0]) for row in cur.fetchall()]
            pairs = sorted(set(members) | {(c, 0) for c in range(chats)})
            cur.execute("""INSERT INTO members (chat_id, user_id, joined_at, role)
                           SELECT c, u, now(), CASE WHEN u = %s THEN 'owner' ELSE 'member' END
                             FROM unnest(%s::bigint[], %s::bigint[]) m(c, u)""",
                        (ids[0], [chat_ids[c] for c, _ in pairs], [ids[u] for _, u in pairs]))
            cur.execute("ANALYZE members")
    finally:
        conn.close()
    return ([Account(uid, name, token) for uid, name, token in zip(ids, names, tokens,
                                                                  strict=True)], uris)
