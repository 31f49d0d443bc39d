"""Failed sign-in limits, counted in the store so that every daemon shares them."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import attrs

from chatire.interfaces import IStore

#: Failures are counted over the last this many seconds.
WINDOW = 60.0


@attrs.frozen
class LoginLimits:
    """At most ``per_name`` failures per (username, address) and ``per_address`` per
    address in any minute; a limit of 0 is off."""

    store: IStore
    per_name: int
    per_address: int

    def _subjects(self, username: str | None, address: str) -> dict[str, int]:
        subjects = {f"a|{address}": self.per_address}
        if username is not None:  # any text a client sent: hashed to a short key
            pair = f"{address}\n{username.lower()}".encode("utf-8", "surrogatepass")
            subjects["n|" + hashlib.sha256(pair).hexdigest()[:32]] = self.per_name
        return {subject: limit for subject, limit in subjects.items() if limit > 0}

    async def retry_after(self, username: str | None, address: str, now: datetime) -> float:
        """0.0 if another attempt is allowed now, else the seconds to wait."""
        subjects = self._subjects(username, address)
        if not subjects:
            return 0.0
        counts: dict[str, tuple[int, datetime]] = await self.store.login_failures(
            sorted(subjects), now - timedelta(seconds=WINDOW))
        wait = 0.0
        for subject, (count, oldest) in counts.items():
            if count >= subjects[subject]:
                wait = max(wait, WINDOW - (now - oldest).total_seconds(), 0.001)
        return wait

    async def failed(self, username: str | None, address: str, now: datetime) -> None:
        """Count one failure of the address (and of the name from it, if given)."""
        subjects = self._subjects(username, address)
        if subjects:
            await self.store.add_login_failures(sorted(subjects), now,
                                                now - timedelta(seconds=WINDOW))
