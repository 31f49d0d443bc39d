"""The `chatire` admin command: migrate, create-user, set-password, revoke-tokens, check."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.task import react
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher

from chatire import version_line
from chatire.config import FLAG_OPTIONS, MULTI_OPTIONS, SCALAR_OPTIONS, Config, attribute
from chatire.errors import NotFound
from chatire.urls import redacted

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: The "client address" of the operator's commands (their own queue and limits).
OPERATOR = "operator"
_DEFAULTS = Config()


class CommandFailed(Exception):
    """A command could not do its job; the message is the one line the user sees."""


# -- the options table of docs/deployment.md ------------------------------------------


def options_table() -> str:
    """The Markdown table of every daemon option, generated from chatire.config."""
    rows = ["| option | environment | default | meaning |", "|---|---|---|---|"]
    entries: list[tuple[str, str, str]] = []
    for name, _, help_text in SCALAR_OPTIONS:
        default = getattr(_DEFAULTS, attribute(name))
        entries.append((name, f"`{default}`" if default != "" else "(none)", help_text))
    for name, help_text in MULTI_OPTIONS:
        default = getattr(_DEFAULTS, attribute(name))
        shown = ", ".join(f"`{d}`" for d in default) if default else "(none)"
        entries.append((name, shown, help_text))
    for name, help_text in FLAG_OPTIONS:
        entries.append((name, "off", help_text + "; a flag (`=1` in the environment)"))
    for name, default, help_text in sorted(entries):
        env = "CHATIRE_" + attribute(name).upper()
        rows.append(f"| `--{name}` | `{env}` | {default} | {help_text.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


# -- the commands ------------------------------------------------------------------------


def _store(args: argparse.Namespace, reactor: Any) -> Any:
    """The daemon's store (chatire.daemon), of --db."""
    from chatire.daemon import open_store

    return open_store(attrs.evolve(_DEFAULTS, db=args.db), reactor)


def _chats(store: Any, reactor: Any) -> Any:
    """The daemon's chat rules (chatire.daemon) over the store, with the default limits."""
    from chatire.daemon import chat_service

    return chat_service(_DEFAULTS, store, reactor)


async def _within(d: Deferred[Any], seconds: float, reactor: Any, what: str) -> Any:
    try:
        return await d.addTimeout(seconds, reactor)
    except DeferredTimeoutError:
        raise CommandFailed(f"{what}: no answer within {seconds:g} s") from None


async def _started(store: Any, args: argparse.Namespace, reactor: Any) -> None:
    """Connect and migrate, as the daemon does at start."""
    await _within(store.start(), args.timeout, reactor, f"cannot reach the database "
                  f"({redacted(args.db)})")


async def migrate(args: argparse.Namespace, reactor: Any, password: str | None) -> str:
    from chatire.store.schema import migrate as apply

    store = _store(args, reactor)
    await _within(store.engine.connect(), args.timeout, reactor,
                  f"cannot reach the database ({redacted(args.db)})")
    try:
        before = await store.engine.run(schema_version)
        version = await store.engine.run(apply)
    finally:
        await store.stop()
    if before == version:
        return f"schema up to date (version {version})"
    return f"schema migrated from version {before or 0} to {version}"


async def create_user(args: argparse.Namespace, reactor: Any, password: str | None) -> str:
    assert password is not None
    store = _store(args, reactor)
    await _started(store, args, reactor)
    try:
        user = await _chats(store, reactor).register(args.username, password, args.display_name,
                                                     OPERATOR)
    finally:
        await store.stop()
    return f"created user {user.username} (id {user.id})"


async def set_password(args: argparse.Namespace, reactor: Any, password: str | None) -> str:
    assert password is not None
    store = _store(args, reactor)
    await _started(store, args, reactor)
    try:
        try:
            user = await _chats(store, reactor).set_password(args.username, password,
                                                             OPERATOR)
        except NotFound:
            raise CommandFailed(f"no user named {args.username!r}") from None
        revoked = 0 if args.keep_tokens else len(await store.delete_user_tokens(user.id))
    finally:
        await store.stop()
    line = f"password of {user.username} set"
    if not args.keep_tokens:
        line += f"; {revoked} token(s) revoked"
        await _announce_revocation(args, reactor, revoked)
    return line


async def revoke_tokens(args: argparse.Namespace, reactor: Any, password: str | None) -> str:
    store = _store(args, reactor)
    await _started(store, args, reactor)
    try:
        user = await store.find_user(args.username)
        if user is None:
            raise CommandFailed(f"no user named {args.username!r}")
        hashes = await store.delete_user_tokens(user.id)
    finally:
        await store.stop()
    await _announce_revocation(args, reactor, len(hashes), hashes)
    return f"revoked {len(hashes)} token(s) of {user.username}"


async def _announce_revocation(args: argparse.Namespace, reactor: Any, count: int,
                               hashes: list[str] | None = None) -> None:
    """Tell running daemons over the bus, so open sockets of those tokens close (4001)."""
    if not count or args.bus.startswith("memory:"):
        return  # nothing to tell, or no way to reach a daemon's in-process bus
    from chatire.frames import CONTROL, EPHEMERAL, revoke_event

    if hashes is None:
        return  # set-password: the store no longer has them; new calls fail at once
    try:
        bus = await _bus_up(args, reactor)
        try:
            notice = bus.publish(CONTROL, EPHEMERAL, revoke_event(hashes))
            await _within(notice, args.timeout, reactor, "the bus did not confirm the notice")
        finally:
            await bus.stop()
    except CommandFailed as e:
        raise CommandFailed(f"revoked {count} token(s) in the store (new requests fail), but "
                            f"could not tell the running daemons, so open sockets stay "
                            f"open until they reconnect: {e}") from None


async def _bus_up(args: argparse.Namespace, reactor: Any) -> Any:
    from chatire.bus import bus_from_url

    bus = bus_from_url(args.bus, reactor)
    up: Deferred[None] = Deferred()
    warnings: list[str] = []

    def watch(event: dict[str, Any]) -> None:
        if event.get("log_level") in (LogLevel.warn, LogLevel.error):
            warnings.append(formatEvent(event))
            if event.get("refused") and not up.called:  # bad credentials or vhost: final
                up.errback(CommandFailed(f"the broker refused the connection "
                                         f"({redacted(args.bus)}): {event.get('reason')}"))

    def ready() -> None:
        if not up.called:
            up.callback(None)

    observer = cast(ILogObserver, watch)
    globalLogPublisher.addObserver(observer)
    try:
        bus.start(lambda _uri, _seq, _payload, ack: ack(), ready)
        await up.addTimeout(args.timeout, reactor)
    except DeferredTimeoutError:
        await bus.stop()
        why = f": {warnings[-1]}" if warnings else ""
        raise CommandFailed(f"cannot reach the bus ({redacted(args.bus)}) within "
                            f"{args.timeout:g} s{why}") from None
    except CommandFailed:
        await bus.stop()
        raise
    finally:
        globalLogPublisher.removeObserver(observer)
    return bus


def _missing_sqlite_file(url: str) -> str | None:
    from chatire.store import sqlite_path

    if url.startswith("sqlite:") and not os.path.exists(sqlite_path(url)):
        return sqlite_path(url)
    return None


async def check(args: argparse.Namespace, reactor: Any, password: str | None) -> str:
    from chatire.store.schema import MIGRATIONS

    lines, failed = [], False
    try:
        missing = _missing_sqlite_file(args.db)
        if missing is not None:
            raise CommandFailed(f"no SQLite database at {missing} (run `chatire migrate`)")
        store = _store(args, reactor)
        await _within(store.engine.connect(), args.timeout, reactor, "no answer")
        try:
            version = await _within(store.engine.run(schema_version), args.timeout, reactor,
                                    "no answer")
        finally:
            await store.stop()
        if (version or 0) < len(MIGRATIONS):
            failed = True
            lines.append(f"store {redacted(args.db)}: reachable, schema at version "
                         f"{version or 0} of {len(MIGRATIONS)} (run `chatire migrate`)")
        else:
            lines.append(f"store {redacted(args.db)}: ok (schema version {version})")
    except Exception as e:
        failed = True
        lines.append(f"store {redacted(args.db)}: FAILED: {_one_line(e)}")
    if args.bus.startswith("memory:"):
        lines.append("bus memory://: ok (in-process, nothing to reach)")
    else:
        try:
            bus = await _bus_up(args, reactor)
            await bus.stop()
            lines.append(f"bus {redacted(args.bus)}: ok")
        except Exception as e:
            failed = True
            lines.append(f"bus {redacted(args.bus)}: FAILED: {_one_line(e)}")
    report = "\n".join(lines)
    if failed:
        sys.stdout.write(report + "\n")
        raise CommandFailed("check failed")
    return report


async def schema_version(cur: Any) -> int | None:
    """The applied schema version, or None when no migration ever ran."""
    if cur.dialect == "postgresql":
        await cur.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    else:
        await cur.execute(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'schema_version'")
    row = cur.fetchone()
    if not row or not row[0]:
        return None
    await cur.execute("SELECT max(version) FROM schema_version")
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else None


Command = Callable[[argparse.Namespace, Any, "str | None"], Coroutine[Any, Any, str]]
COMMANDS: dict[str, Command] = {
    "migrate": migrate,
    "create-user": create_user,
    "set-password": set_password,
    "revoke-tokens": revoke_tokens,
    "check": check,
}


# -- the command line -------------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatire", description="Administer a chatire deployment (store and bus).")
    parser.add_argument("--version", action="version", version=version_line())
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=os.environ.get("CHATIRE_DB", _DEFAULTS.db),
                        help=f"store URL (default: $CHATIRE_DB or {_DEFAULTS.db})")
    common.add_argument("--bus", default=os.environ.get("CHATIRE_BUS", _DEFAULTS.bus),
                        help=f"bus URL (default: $CHATIRE_BUS or {_DEFAULTS.bus})")
    common.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the store or the bus (default: 10)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", parents=[common],
                        help="apply the schema migrations (the daemon also does at start)")
    for name, what in (("create-user", "create a user"),
                       ("set-password", "set a user's password (revokes their tokens)")):
        sub = commands.add_parser(name, parents=[common], help=what)
        sub.add_argument("username")
        sub.add_argument("--password-stdin", action="store_true",
                         help="read the password from the first line of standard input")
        if name == "create-user":
            sub.add_argument("--display-name", default=None)
        else:
            sub.add_argument("--keep-tokens", action="store_true",
                             help="do not revoke the user's tokens")
    sub = commands.add_parser("revoke-tokens", parents=[common],
                              help="sign a user out everywhere (open sockets close with 4001 "
                                   "when --bus reaches the daemons)")
    sub.add_argument("username")
    commands.add_parser("check", parents=[common],
                        help="check that the store and the bus can be reached")
    commands.add_parser("options-doc", help="print the Markdown table of the daemon options")
    return parser


def _read_password(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            parser.error("--password-stdin: standard input has no password")
        return password
    if not sys.stdin.isatty():
        parser.error("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password (again): "):
        _fail("the passwords differ")
    return first


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"chatire: {message}\n")
    raise SystemExit(EXIT_FAILED)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `chatire` console script and `python -m chatire`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "options-doc":
        sys.stdout.write(options_table())
        return
    try:
        from chatire.bus import bus_from_url
        from chatire.store import store_from_url

        store_from_url(args.db, None)  # checks the URL only
        bus_from_url(args.bus, None)  # type: ignore[arg-type]
    except ValueError as e:
        parser.error(str(e))
    password = None
    if args.command in ("create-user", "set-password"):
        password = _read_password(args, parser)
    command = COMMANDS[args.command]

    async def run(reactor: Any) -> None:
        try:
            line = await command(args, reactor, password)
        except CommandFailed as e:
            _fail(str(e))
        except Exception as e:  # the store's refusals and failures: one line, exit 1
            _fail(_one_line(e))
        sys.stdout.write(line + "\n")

    react(lambda reactor: Deferred.fromCoroutine(run(reactor)))
