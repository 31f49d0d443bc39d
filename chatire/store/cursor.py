"""The small cursor protocol the shared SQL is written against."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol


class Cursor(Protocol):
    """What a transaction function may do: run a statement, read its rows.

    SQL uses ``%s`` placeholders; each engine adapts them. Times are passed and
    returned as aware ``datetime`` values whatever the column type. A statement
    run ``alone`` is the whole transaction: the engine may skip BEGIN and COMMIT
    (PostgreSQL does: one round trip instead of three).
    """

    dialect: str

    async def execute(self, sql: str, params: Sequence[Any] = (), *,
                      alone: bool = False) -> None: ...

    def queue(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose rows are not read, in order: PostgreSQL sends it with
        the next statement, or with the COMMIT (no round trip of its own); an error in
        it fails that statement, or the transaction."""

    def fetchone(self) -> tuple[Any, ...] | None: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...

    def time(self, value: Any) -> datetime: ...
