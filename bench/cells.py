"""Cells of the docs' tables: numbers, a result by label, a result's parameters."""

from __future__ import annotations

from typing import Any


def find(results: list[dict[str, Any]], label: str) -> dict[str, Any] | None:
    """The result of that label, if the run has one."""
    return next((r for r in results if r.get("label") == label), None)


def num(value: Any, digits: int = 0) -> str:
    """A number with thousands separators; a dash for anything else."""
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return "—"


def params(r: dict[str, Any]) -> str:
    """What a result was run with, in a few words."""
    p = r.get("params", {})
    if r["scenario"] in ("fanout", "max", "mixed"):
        pinned = f" ({p['pinning']})" if p.get("pinning") else ""
        return f"{p.get('rooms', '?')} x {p.get('subscribers', '?')}{pinned}"
    if r["scenario"] == "idle":
        return f"{p.get('connections', 0):,} sockets, {p.get('rooms', '?')} chats"
    if r["scenario"] == "timeline":
        return f"{p.get('events', 0):,}"
    return f"{p.get('rooms', '?')} chats x {p.get('senders_per_room', '?')} senders"
