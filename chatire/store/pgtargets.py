"""The hosts of a libpq connection string, one connection string each, tried in turn."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import attrs
import psycopg2
from psycopg2.extensions import make_dsn, parse_dsn

#: libpq parameters of a host list, and the variables libpq reads when they are absent.
_LIST_PARAMETERS = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT"}


@attrs.frozen
class Target:
    """One host to connect to: its libpq connection string, and a name for messages."""

    dsn: str
    name: str


def targets(dsn: str, environ: Mapping[str, str] = os.environ) -> list[Target]:
    """The hosts of ``dsn`` in the order libpq would try them, one connection string each.

    libpq ignores ``connect_timeout`` on an asynchronous connect, so it would wait on
    a silent first host forever and never reach the second: the caller connects host
    by host, with a deadline each. Every other parameter stays as libpq read it
    (``psycopg2.extensions.parse_dsn`` is libpq's own parser); a single host, or a
    list this cannot split faithfully (an empty item: libpq's default host), is
    returned as written, for libpq to handle.
    """
    try:
        parameters = parse_dsn(dsn)
    except psycopg2.ProgrammingError:  # libpq will say what is wrong with it
        return [Target(dsn, "the database")]
    lists = {key: _items(parameters.get(key) or environ.get(variable) or "")
             for key, variable in _LIST_PARAMETERS.items()}
    count = max(len(lists["host"]), len(lists["hostaddr"]))
    ports = lists["port"] or [""]
    splittable = (count > 1 and all(len(lists[key]) in (0, count)
                                    for key in ("host", "hostaddr"))
                  and len(ports) in (1, count))
    if not splittable:
        return [Target(dsn, _name(lists["host"], lists["hostaddr"], ports))]
    found = []
    for i in range(count):
        one = dict(parameters)
        for key in _LIST_PARAMETERS:
            one.pop(key, None)
        host = lists["host"][i] if lists["host"] else ""
        address = lists["hostaddr"][i] if lists["hostaddr"] else ""
        port = ports[i] if len(ports) == count else ports[0]
        if not (host or address):
            return [Target(dsn, "the database")]
        for key, value in (("host", host), ("hostaddr", address), ("port", port)):
            if value:
                one[key] = value
        found.append(Target(make_dsn(**one), _name([host], [address], [port])))
    if parameters.get("load_balance_hosts") == "random":
        random.shuffle(found)
    return found


def _items(value: str) -> list[str]:
    """The items of a libpq list (``a,b``): none for an empty value."""
    return value.split(",") if value else []


def _name(hosts: list[str], addresses: list[str], ports: list[str]) -> str:
    """``host:port`` for messages (never a password), e.g. ``127.0.0.1:5432``."""
    where = ",".join(hosts) or ",".join(addresses) or "the default host"
    port = ",".join(p for p in ports if p)
    return f"{where}:{port}" if port else where
