"""The one door to each library's private names: checked at import, with a public fallback."""

from __future__ import annotations

import inspect
from typing import Any

from twisted.logger import Logger

log = Logger()


def has(owner: Any, name: str, *setters: Any) -> bool:
    """Whether ``owner`` has ``name`` as a class attribute, or one of ``setters``
    (classes or modules whose source sets it on instances) assigns ``.name``."""
    if hasattr(owner, name):
        return True
    for setter in setters:
        try:
            source = inspect.getsource(setter)
        except (OSError, TypeError):
            continue
        if f".{name} =" in source:
            return True
    return False


def check(library: str, found: dict[str, bool]) -> bool:
    """True when every private name is there; otherwise log once which are not."""
    missing = sorted(name for name, ok in found.items() if not ok)
    if missing:
        log.warn("{library}: private names {missing} are gone in this version; using the "
                 "public API (slower)", library=library, missing=", ".join(missing))
    return not missing
