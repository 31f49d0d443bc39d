"""Store and bus URLs made fit for logs and messages: passwords replaced, nothing else changed."""

from __future__ import annotations

import re

_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|sslpassword)=)[^&#]*")


def redacted(url: str) -> str:
    """The URL with any password (in the user part or the query) shown as ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}{':***' if colon else ''}@{host}"
    return scheme + sep + authority + _QUERY_SECRET.sub(r"\1***", tail)
