"""The daemon's configuration: one frozen value built from options or environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

DEFAULT_LISTEN = "tcp:8000:interface=127.0.0.1"
#: Seconds one PostgreSQL host has to answer a connect (at start and on each reconnect).
DEFAULT_DB_CONNECT_TIMEOUT = 10.0


@attrs.frozen
class Config:
    """Everything the daemon needs to know, with PROTOCOL.md's defaults."""

    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    db: str = "sqlite:///chatire.db"
    db_connect_timeout: float = DEFAULT_DB_CONNECT_TIMEOUT
    bus: str = "memory://"
    max_message_chars: int = 4000
    max_body_bytes: int = 65536
    max_frame_bytes: int = 65536
    send_rate: float = 10.0
    send_burst: int = 50
    login_failures: int = 5
    login_failures_per_address: int = 30
    trusted_proxy: tuple[str, ...] = ()
    signup_rate: int = 30
    chat_rate: int = 100
    max_connections: int = 50000
    ping_interval: float = 30.0
    ping_timeout: float = 10.0
    slow_reader_bytes: int = 1048576
    token_lifetime: int = 2592000
    allowed_origin: tuple[str, ...] = ()
    auth_timeout: float = 10.0
    http_timeout: float = 60.0
    request_timeout: float = 30.0
    metrics_listen: tuple[str, ...] = ()
    shutdown_timeout: float = 10.0
    log_format: str = "text"
    web_root: str = ""
    max_sockets_per_user: int = 50
    max_subscriptions: int = 1000
    max_pending_changes: int = 8
    typing_interval: float = 3.0
    presence_grace: float = 15.0
    smtp: str = ""
    mail_from: str = ""
    public_url: str = ""
    webhook_allow_private: bool = False


#: (name, type, help) of every option that takes one value; the names are the
#: ``--option`` spellings of PROTOCOL.md, ``-`` for ``_``.
SCALAR_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("db", str, "store URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB"),
    ("db-connect-timeout", float, "seconds a PostgreSQL host has to accept a connection, at "
     "start and on every reconnect; past it the next host of the URL's list is tried; "
     "0 waits for ever"),
    ("bus", str, "bus URL: memory:// or amqp://USER:PASS@HOST:PORT/VHOST; repeat it (or "
     "give a comma list) for the nodes of a RabbitMQ cluster"),
    ("max-message-chars", int, "longest message, in characters, after stripping"),
    ("max-body-bytes", int, "largest HTTP request body; past it 413"),
    ("max-frame-bytes", int, "largest WebSocket frame or message; past it close 1009"),
    ("send-rate", float, "messages a second per user (token bucket); 0 turns it off"),
    ("send-burst", int, "burst size of the per-user send bucket"),
    ("login-failures", int, "failed sign-ins per username and client address per minute, "
     "counted across all daemons (in the store), before 429; 0 turns it off"),
    ("login-failures-per-address", int, "failed sign-ins (and sign-ups refused for a taken "
     "name) per client address per minute, whatever the username, before 429; 0 turns it off"),
    ("signup-rate", int, "sign-ups per client address per hour; past it 429; 0 turns it off"),
    ("chat-rate", int, "chats created per user per hour; past it 429; 0 turns it off"),
    ("max-connections", int, "open WebSocket connections per daemon; past it 503"),
    ("ping-interval", float, "seconds between server pings; 0 turns pings off"),
    ("ping-timeout", float, "seconds a pong may take before the socket is dropped"),
    ("slow-reader-bytes", int, "bytes waiting for one socket before close 4008"),
    ("token-lifetime", int, "seconds a bearer token stays valid"),
    ("auth-timeout", float, "seconds a socket has to authenticate"),
    ("http-timeout", float, "seconds an HTTP connection may stay silent (before its "
     "request or between requests) before it is closed; 0 never"),
    ("request-timeout", float, "seconds a client may take to send a whole HTTP request, "
     "headers and body; past it the connection closes; 0 never"),
    ("shutdown-timeout", float, "seconds a graceful stop may take"),
    ("log-format", str, "text or json (one JSON object a line)"),
    ("web-root", str, "folder of the browser UI (default: the packaged web/)"),
    ("max-sockets-per-user", int, "open WebSocket connections of one user on this daemon; "
     "past it 429 (or close 4029 after a first-frame auth); 0 turns it off"),
    ("max-subscriptions", int, "chats one socket may follow; past it a rate_limited "
     "error frame; 0 turns it off"),
    ("max-pending-changes", int, "edits, deletes and reactions of one bearer token waiting "
     "for the store or being written; past it 429 at once; 0 turns it off"),
    ("typing-interval", float, "seconds: at most one typing frame per user per chat is "
     "relayed in that time, the rest are dropped; 0 relays every one"),
    ("presence-grace", float, "seconds a user stays online in a chat after their last "
     "socket left it (a reload shows no change)"),
    ("smtp", str, "mail relay for e-mail notifications: smtp://[USER:PASS@]HOST:PORT "
     "(STARTTLS when offered) or smtps://...; none: e-mail is off"),
    ("mail-from", str, "sender address of notification e-mails (default: chatire@ the "
     "relay's host)"),
    ("public-url", str, "the base of links in notifications and invites, e.g. "
     "https://chat.example.org (default: the first --listen)"),
)

#: Options that are on when given, off by default (``CHATIRE_*=1`` in the environment).
FLAG_OPTIONS: tuple[tuple[str, str], ...] = (
    ("webhook-allow-private", "let webhooks reach loopback, private, link-local and "
     "multicast addresses (refused by default)"),
)

#: Options that may be given more than once.
MULTI_OPTIONS: tuple[tuple[str, str], ...] = (
    ("listen", "endpoint string to serve HTTP + WebSocket on; repeatable"),
    ("allowed-origin", "an Origin allowed to open sockets; repeatable"),
    ("metrics-listen", "endpoint string for a separate /metrics listener; repeatable"),
    ("trusted-proxy", "address (or network) of a reverse proxy whose X-Forwarded-For is "
     "believed: the client is its right-most address not itself trusted; repeatable"),
)


def attribute(option: str) -> str:
    """The Config field of a ``--option`` name."""
    return option.replace("-", "_")


def from_mapping(values: Mapping[str, Any]) -> Config:
    """Build a Config from already-typed option values (missing ones default)."""
    fields = {f.name for f in attrs.fields(Config)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = attribute(key)
        if name not in fields or value is None:
            continue
        if isinstance(value, list):
            value = tuple(value)
            if not value:
                continue
        kwargs[name] = value
    return Config(**kwargs)


def environment_variable(option: str) -> str:
    """The ``CHATIRE_*`` variable of a ``--option`` name."""
    return "CHATIRE_" + attribute(option).upper()


def raw_environment(environ: Mapping[str, str]) -> dict[str, str | list[str]]:
    """Option values (still text) from ``CHATIRE_*`` variables; repeatable ones split on commas."""
    values: dict[str, str | list[str]] = {}
    for option, _, _ in SCALAR_OPTIONS:
        raw = environ.get(environment_variable(option))
        if raw is not None:
            values[option] = raw
    for option, _ in MULTI_OPTIONS:
        raw = environ.get(environment_variable(option))
        if raw:
            values[option] = [part.strip() for part in raw.split(",") if part.strip()]
    for option, _ in FLAG_OPTIONS:
        raw = environ.get(environment_variable(option))
        if raw is not None:
            values[option] = raw
    return values


def flag_value(option: str, raw: str) -> bool:
    """A flag's value from its environment variable: 1/true/yes or 0/false/no/empty."""
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"--{option}: expected 1 or 0, got {raw!r}")


def from_environment(environ: Mapping[str, str]) -> Config:
    """Build a Config from ``CHATIRE_*`` variables; repeatable ones split on commas."""
    kinds = {option: kind for option, kind, _ in SCALAR_OPTIONS}
    flags = {option for option, _ in FLAG_OPTIONS}
    values: dict[str, Any] = {}
    for option, raw in raw_environment(environ).items():
        if option in flags:
            values[option] = flag_value(option, str(raw))
        else:
            values[option] = (parse_value(option, kinds[option], raw) if isinstance(raw, str)
                              else raw)
    return from_mapping(values)


def parse_value(option: str, kind: type, raw: str) -> Any:
    """Convert one option's text to its type, refusing negatives with a clear message."""
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"--{option}: expected {kind.__name__}, got {raw!r}") from None
    if isinstance(value, (int, float)) and value < 0:
        raise ValueError(f"--{option}: must not be negative, got {raw!r}")
    return value
