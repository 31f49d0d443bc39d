"""Suites that run only when asked (``--soak``, ``--ha``): the conftest hooks of such a folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def opt_in(folder: Path, option: str, what: str, make: str) -> tuple[Callable[..., Any], ...]:
    """``pytest_addoption``, ``pytest_ignore_collect`` and ``pytest_collection_modifyitems``
    for a conftest in ``folder``: its tests are collected only with ``--option`` or when the
    command line names the folder (then skipped unless ``--option`` is given)."""
    here = folder.resolve()
    flag = f"--{option}"

    def named(config: pytest.Config) -> bool:
        """Whether the command line named this folder (or a file in it) itself."""
        for arg in config.args:
            path = Path(arg.split("::")[0]).resolve()
            if path == here or here in path.parents:
                return True
        return False

    def pytest_addoption(parser: pytest.Parser) -> None:
        parser.addoption(flag, action="store_true", default=False,
                         help=f"run {what} ({make})")

    def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
        if config.getoption(option, default=False) or named(config):
            return None
        return here in Path(collection_path).resolve().parents or None

    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        if config.getoption(option, default=False):
            return
        skip = pytest.mark.skip(reason=f"{what}: run it with {flag} ({make})")
        for item in items:
            if here in Path(str(item.path)).resolve().parents:
                item.add_marker(skip)

    return pytest_addoption, pytest_ignore_collect, pytest_collection_modifyitems
