"""``@username`` mentions: whole word, any case, as PROTOCOL.md's "mentions" level reads them."""

from __future__ import annotations

import re
from functools import lru_cache

#: What may sit inside a username; a mention ends where these stop (a trailing dot,
#: as at the end of a sentence, is not part of it).
_NAME_CHAR = "A-Za-z0-9_.-"


@lru_cache(maxsize=4096)
def _pattern(username: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<![{_NAME_CHAR}@])@{re.escape(username)}(?![A-Za-z0-9_-])(?!\.[A-Za-z0-9_-])",
        re.IGNORECASE)


def mentions(text: str, username: str) -> bool:
    """Whether the text mentions ``@username`` as a whole word."""
    return "@" in text and _pattern(username).search(text) is not None
