"""Garbage-collector settings for a long-running daemon with many long-lived objects."""

from __future__ import annotations

import gc

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
