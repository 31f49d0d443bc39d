"""chatire.daemon.build is the one composition root: `twistd chatire` and chatire.tac alike."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import IService, IServiceCollection
from twisted.persisted import sob
from twisted.scripts.twistd import ServerOptions

from chatire import tap
from chatire.daemon import DAEMON, TRIMMER, daemon_of

TAC = Path(__file__).resolve().parents[2] / "chatire.tac"


def _shape(service: IService) -> tuple[str, str | None, list[Any]]:
    """A service tree as (class, name, children), what twistd starts and in which order."""
    children = list(service) if IServiceCollection.providedBy(service) else []  # type: ignore[call-overload]
    return type(service).__name__, service.name, [_shape(child) for child in children]


def test_the_tac_and_the_plugin_run_the_same_services(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"CHATIRE_DB": f"sqlite:///{tmp_path / 'same.db'}",
                        "CHATIRE_LISTEN": "tcp:0:interface=127.0.0.1",
                        "CHATIRE_MAX_MESSAGE_CHARS": "10",
                        "CHATIRE_LOG_FORMAT": "json"}.items():
        monkeypatch.setenv(name, value)
    # twistd -ny chatire.tac: twistd loads the file's `application` this way.
    monkeypatch.setattr(sys, "argv", ["twistd", "-ny", str(TAC)])
    application = sob.loadValueFromFile(str(TAC), "application")
    (from_tac,) = list(IServiceCollection(application))
    # twistd -n chatire: the plugin's options under twistd's, then makeService.
    twistd = ServerOptions()
    twistd.parseOptions(["-n", "--pidfile=", "chatire"])
    from_plugin = tap.makeService(twistd.subOptions)

    assert _shape(from_tac) == _shape(from_plugin) == (
        "RootService", None, [("ChatireService", DAEMON, []), ("TimerService", TRIMMER, [])])
    assert daemon_of(from_tac).config == daemon_of(from_plugin).config
    assert daemon_of(from_tac).config.max_message_chars == 10
    for top in (from_tac, from_plugin):  # the process's own log: JSON lines to stdout
        assert top.log_format == "json" and top.destination.path is None


def test_the_parts_know_each_other_from_construction(tmp_path: Path) -> None:
    """No part is finished after it was built: the socket factory has the Hub, the
    chat rules tell the Hub, the Hub reads the daemon's own (metered) store."""
    options = tap.Options()
    options.parseOptions(["--db", f"sqlite:///{tmp_path / 'parts.db'}"])
    daemon = daemon_of(tap.makeService(options))
    assert daemon.sockets.hub is daemon.hub
    assert daemon.hub.store is daemon.store
    assert daemon.api.readiness.store is daemon.store
    assert daemon.chats.events._events is daemon.hub  # type: ignore[attr-defined]
    assert type(daemon.store.engine).__name__ == "MeteredEngine"  # type: ignore[attr-defined]
