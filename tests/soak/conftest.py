"""The soak suite runs only with ``--soak`` (`make soak`); the default run does not collect it."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False,
                     help="run the long soak tests of tests/soak (make soak)")


def _named(config: pytest.Config) -> bool:
    """Whether the command line named this folder (or a file in it) itself."""
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.getoption("soak", default=False) or _named(config):
        return None
    return HERE in Path(collection_path).resolve().parents or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("soak", default=False):
        return
    skip = pytest.mark.skip(reason="a soak test: run it with --soak (make soak)")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)
