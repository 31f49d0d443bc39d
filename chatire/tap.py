"""twistd entry: Options for `twistd chatire` and makeService() building the daemon."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.application.service import IService
from twisted.python import usage

from chatire import version_line
from chatire.config import (
    FLAG_OPTIONS,
    MULTI_OPTIONS,
    SCALAR_OPTIONS,
    Config,
    attribute,
    flag_value,
    parse_value,
    raw_environment,
)
from chatire.logs import LogDestination, log_destination
from chatire.preflight import preflight

_DEFAULTS = Config()


class Options(usage.Options):
    """Command-line options of `twistd chatire`; PROTOCOL.md names and defaults."""

    synopsis = "[options]"
    longdesc = ("Run the chatire chat server: HTTP API, WebSocket at /ws and the "
                "browser UI, on one port.")
    optParameters = [
        [name, None, getattr(_DEFAULTS, attribute(name)), help_text, None]
        for name, _, help_text in SCALAR_OPTIONS
    ]
    optFlags = [[name, None, help_text] for name, help_text in FLAG_OPTIONS]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        for name, _ in MULTI_OPTIONS:
            self[name] = []
        # CHATIRE_* variables come first, a flag wins: the same configuration path as
        # chatire.tac, so a systemd EnvironmentFile can hold secrets out of `ps`.
        # --help still shows the built-in defaults, never a variable's value.
        self.update(raw_environment(os.environ if environ is None else environ))
        self._flagged: set[str] = set()

    def _append(self, name: str, value: str) -> None:
        if name not in self._flagged:  # the first flag replaces the variable's list
            self._flagged.add(name)
            self[name] = []
        self[name].append(value)

    def opt_version(self) -> None:
        """Print chatire's version (and Twisted's) and exit."""
        print(version_line())
        raise SystemExit(0)

    def opt_bus(self, value: str) -> None:
        """Bus URL; several (repeated, or a comma list) name the nodes of one cluster."""
        if "bus" not in self._flagged:  # the first flag replaces the variable's value
            self._flagged.add("bus")
            self["bus"] = value
        else:
            self["bus"] = f"{self['bus']},{value}"

    def opt_listen(self, value: str) -> None:
        """Endpoint string to serve on, e.g. tcp:8000:interface=127.0.0.1 (repeatable)."""
        self._append("listen", value)

    def opt_allowed_origin(self, value: str) -> None:
        """An Origin allowed to open WebSockets besides the daemon's own (repeatable)."""
        self._append("allowed-origin", value)

    def opt_metrics_listen(self, value: str) -> None:
        """Endpoint string of a separate /metrics listener (repeatable)."""
        self._append("metrics-listen", value)

    def opt_trusted_proxy(self, value: str) -> None:
        """Address or network of a proxy whose X-Forwarded-For is believed (repeatable)."""
        self._append("trusted-proxy", value)

    def postOptions(self) -> None:
        try:
            self.config = to_config(self)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None


def to_config(options: dict[str, Any]) -> Config:
    """Typed, checked Config from parsed options (defaults for what is missing)."""
    values: dict[str, Any] = {}
    for name, kind, _ in SCALAR_OPTIONS:
        raw = options.get(name)
        if raw is not None:
            values[attribute(name)] = parse_value(name, kind, str(raw))
    for name, _ in MULTI_OPTIONS:
        given = tuple(options.get(name) or ())
        if given:
            values[attribute(name)] = given
    for name, _ in FLAG_OPTIONS:
        raw = options.get(name)
        if raw is not None:
            values[attribute(name)] = raw if isinstance(raw, bool) else flag_value(name, str(raw))
    config = attrs.evolve(_DEFAULTS, **values)
    check(config)
    return config


def check(config: Config) -> None:
    """Refuse values that cannot work, with the option's name in the message."""
    from twisted.internet import reactor

    from chatire.bus import bus_from_url
    from chatire.clientaddr import trusted_networks
    from chatire.store import store_from_url

    store_from_url(config.db, reactor)
    bus_from_url(config.bus, reactor)
    trusted_networks(config.trusted_proxy)
    if config.smtp:
        from chatire.notify.mail import parse_smtp_url

        try:
            parse_smtp_url(config.smtp)
        except ValueError as e:
            raise ValueError(f"--smtp: {e}") from None
    if config.public_url and not config.public_url.startswith(("http://", "https://")):
        raise ValueError("--public-url: must start with http:// or https://")
    if config.log_format not in ("text", "json"):
        raise ValueError("--log-format: text or json")
    for name in ("max_message_chars", "max_body_bytes", "max_frame_bytes", "max_connections"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be at least 1")


def makeService(options: Options) -> IService:
    """The daemon of `twistd chatire`: chatire.daemon.build after the preflight checks."""
    # twistd's own --logfile/--syslog/--logger: honoured with --log-format json as well.
    twistd = getattr(options, "parent", None)
    return start_up(options.config, log_destination(twistd) if twistd is not None else None)


def start_up(config: Config, logs: LogDestination | None) -> IService:
    """The daemon's service tree after the checks a start needs (`twistd chatire` and
    chatire.tac alike); a set-up that cannot work exits with one line."""
    from twisted.internet import reactor

    from chatire.daemon import build

    try:
        check(config)
        preflight(config)
        return build(config, reactor, logs=logs)
    except ValueError as e:
        raise SystemExit(f"chatire: {e}") from None

