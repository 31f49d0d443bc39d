"""Sections of a generated document that another generator keeps: ``<!-- name: begin -->``
to ``<!-- name: end -->``, replaced whole by their own generator and left alone by others
(docs/reliability.md: the soak writes the page, `make ha` its section)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from chatire.testing import SOURCE_TREE


def _pattern(name: str | None = None) -> re.Pattern[str]:
    """A section named ``name``, or any section."""
    label = re.escape(name) if name is not None else r"[^:>]+"
    return re.compile(rf"\n*<!-- (?P<name>{label}): begin -->\n.*?<!-- (?P=name): end -->\n?",
                      re.DOTALL)


def sections(text: str, name: str | None = None) -> str:
    """The section ``name`` of ``text`` (every section if None) with its markers; "" if none."""
    return "".join(m.group(0).strip("\n") + "\n\n" for m in _pattern(name).finditer(text))


def without(text: str, name: str | None = None) -> str:
    """``text`` without the section ``name`` (without any section if None)."""
    return _pattern(name).sub("\n", text).rstrip("\n") + "\n"


def put(path: Path, name: str, body: str) -> None:
    """Write ``body`` as the section ``name`` of the file: in its place, or at the end."""
    block = f"<!-- {name}: begin -->\n{body.rstrip()}\n<!-- {name}: end -->\n"
    text = path.read_text() if path.exists() else ""
    if _pattern(name).search(text):
        text = _pattern(name).sub(lambda _: "\n\n" + block, text, count=1).lstrip("\n")
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + block
    path.write_text(text)


def source_commit(tree: Path = SOURCE_TREE) -> str:
    """The commit the figures were made at (``+`` if chatire/ has changes); "?" without git."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "chatire"], cwd=tree,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+" if dirty else "")
    except OSError:
        return "?"
