"""Which chats moved since the last sweep: one indexed query, whatever order commits land in.

A trigger (schema migration 9) stamps ``chats.changed`` whenever ``last_seq`` moves. On
PostgreSQL the stamp is the writing transaction's id and the mark a sweep keeps is the
xmin of its own snapshot: every transaction that snapshot did not see was still running
(its id >= xmin) or had not begun (its id is larger still), so ``changed >= mark`` finds
each of them next time, however long it stayed open and in whatever order it committed.
A plain "highest stamp seen" would miss a transaction that took its id early and
committed after the sweep had read a later one. On SQLite one writer at a time commits
in order, and the stamp is a counter: ``changed > mark`` with the mark the highest
stamp the sweep's snapshot held.
"""

from __future__ import annotations

from chatire.store.cursor import Cursor

#: The mark, read in the same statement (so the same snapshot) as the chats.
_MARK = {
    "postgresql": "pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
    "sqlite": "(SELECT coalesce(max(changed), 0) FROM chats)",
}
#: Which stamps are new to a mark (PostgreSQL's mark is itself unseen, see above).
_NEWER = {"postgresql": "changed >= %s", "sqlite": "changed > %s"}


async def changed_chats(cur: Cursor, since: int | None,
                        uris: list[str]) -> tuple[int, dict[str, int]]:
    """The mark for the next call, and ``{uri: last_seq}`` of the chats named in ``uris``
    plus, unless ``since`` is None, of every chat that changed since that earlier mark
    (some may be repeated: a stamp at or above the mark whose commit was seen already)."""
    where: list[str] = []
    params: list[object] = []
    if uris:
        where.append(f"uri IN ({', '.join(['%s'] * len(uris))})")
        params += uris
    if since is not None:
        where.append(_NEWER[cur.dialect])
        params.append(since)
    sql = f"SELECT NULL, {_MARK[cur.dialect]}"
    if where:
        sql += f" UNION ALL SELECT uri, last_seq FROM chats WHERE {' OR '.join(where)}"
    await cur.execute(sql, tuple(params), alone=True)
    mark = 0
    seqs: dict[str, int] = {}
    for uri, value in cur.fetchall():
        if uri is None:
            mark = int(value)
        else:
            seqs[uri] = int(value)
    return mark, seqs
