"""Process memory of a long-running daemon: collector settings, freed memory given back."""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable

#: Allocations between young collections (CPython's default is 700). A chat message
#: makes a few hundred short-lived containers (Deferreds, coroutines, dicts); at the
#: default most collections find only objects still in flight and promote them.
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Freeze what start-up made (modules, classes, the store pool) and collect less often.

    A full collection walks every tracked object: with the start-up objects
    included it took up to 75 ms under load, a pause every socket waits for.
    Frozen objects are never walked again (they live as long as the process
    anyway); what sockets and messages make later is collected as usual.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def malloc_trim() -> bool:
    """Ask glibc to give its free pages back to the system; False where it cannot."""
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):  # not glibc
        return False


class Trimmer:
    """Gives freed memory back to the system once many sockets have closed.

    What a socket held goes back to the allocator when it closes, and the next
    sockets reuse it, but glibc keeps the pages: RSS stayed at its peak after
    thousands of sockets closed. ``check`` (run every few seconds) trims once the
    open count has fallen by ``drop`` from its highest since the last trim.
    """

    def __init__(self, open_count: Callable[[], int], drop: int = 1000,
                 trim: Callable[[], object] = malloc_trim) -> None:
        self._open_count = open_count
        self._drop = drop
        self._trim = trim
        self._peak = 0

    def check(self) -> None:
        now = self._open_count()
        if now >= self._peak:
            self._peak = now
        elif self._peak - now >= self._drop:
            self._trim()
            self._peak = now
