"""A PostgreSQL primary and a streaming standby of our own, from Debian's postgresql, in a
temporary directory: own ports and socket directory; never the machine's server.

``initdb`` makes the primary (trust on 127.0.0.1, replication included), ``pg_basebackup
-R`` the standby, and ``pg_ctl`` runs each with its port and socket directory on the
command line. The standby is synchronous (``synchronous_standby_names``, set on the primary
after the backup), so a crash of the primary loses nothing it acknowledged: stopping it with ``-m
immediate`` and promoting the standby is the failover of a real crash. PostgreSQL
refuses to run as root: as root, every program runs as the ``postgres`` user (runuser)
in a directory that user owns.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

from chatire.testing import free_port
from tests.ha.programs import clean_environment, missing, run
from tests.support.daemons import sleep

DATABASE = "chatire"


def _bindir() -> Path:
    """The newest installed PostgreSQL's programs (/usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                   key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])
    return found[-1] if found else Path("/usr/lib/postgresql/missing/bin")


class Server:
    """One server of the pair: its data directory and port."""

    def __init__(self, pair: PostgresPair, name: str, port: int) -> None:
        self.pair, self.name, self.port = pair, name, port
        self.data = pair.dir / name
        self.running = False

    async def start(self, *settings: str) -> None:
        options = " ".join(["-c listen_addresses=127.0.0.1", f"-c port={self.port}",
                            f"-c unix_socket_directories={self.pair.dir}", *settings])
        await self.pair.program("pg_ctl", "-D", self.data, "-w", "-t", "60", "-o", options,
                                "-l", self.pair.dir / f"{self.name}.log", "start")
        self.running = True

    async def stop(self, mode: str = "fast") -> None:
        if self.running:
            self.running = False
            await self.pair.program("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60",
                                    "stop")

    async def sql(self, query: str) -> str:
        done = await self.pair.program("psql", "-XAtq", "-h", "127.0.0.1", "-p", str(self.port),
                                       "-U", "postgres", "-d", "postgres", "-c", query)
        return done.strip()


class PostgresPair:
    """A primary and its synchronous standby under ``directory`` (which must exist)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory / "postgresql"
        self.bin = _bindir()
        self.primary = Server(self, "primary", free_port())
        self.standby = Server(self, "standby", free_port())
        self._as_postgres = os.geteuid() == 0

    @classmethod
    def missing(cls) -> list[str]:
        return missing(*(_bindir() / p for p in ("initdb", "pg_ctl", "pg_basebackup", "psql")))

    @property
    def url(self) -> str:
        """--db for the chatire daemons: both hosts, the writable one wins (libpq)."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},"
                f"127.0.0.1:{self.standby.port}/{DATABASE}?target_session_attrs=read-write")

    async def program(self, name: str, *args: str | Path) -> str:
        """Run one of PostgreSQL's programs (as the postgres user if we are root)."""
        launcher = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        done = await run([*launcher, self.bin / name, *args], cwd=self.dir,
                         env=clean_environment({"LC_ALL": "C.UTF-8"}), timeout=120)
        return done.stdout

    async def start(self) -> None:
        """initdb, the primary, the database, pg_basebackup -R, the standby; until the
        standby streams synchronously."""
        self.dir.mkdir(parents=True)
        if self._as_postgres:  # (the directories above must let others through)
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        await self.program("initdb", "-D", self.primary.data, "-U", "postgres", "--auth=trust",
                           "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        await self.primary.start()
        await self.primary.sql(f"CREATE DATABASE {DATABASE}")
        await self.program("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port),
                           "-U", "postgres", "-D", self.standby.data, "-R", "-X", "stream",
                           "-c", "fast")
        await self.standby.start()
        # Synchronous from now on, on the primary alone (the standby's copy of the settings
        # was taken before: once promoted it waits for no one).
        await self.primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        await self.primary.sql("SELECT pg_reload_conf()")
        for _ in range(100):
            if await self.primary.sql("SELECT sync_state FROM pg_stat_replication") == "sync":
                return
            await sleep(0.1)
        raise RuntimeError("the standby does not stream synchronously")

    async def promote(self) -> None:
        """The standby becomes the primary (pg_ctl promote, waited for)."""
        await self.program("pg_ctl", "-D", self.standby.data, "-w", "-t", "60", "promote")

    async def close(self) -> None:
        for server in (self.primary, self.standby):
            try:
                await server.stop("immediate")
            except RuntimeError:
                pass  # already stopped; the directory goes anyway

