"""The soak suite runs only with ``--soak`` (`make soak`); the default run does not collect it."""

from __future__ import annotations

from pathlib import Path

from tests.support.optin import opt_in

pytest_addoption, pytest_ignore_collect, pytest_collection_modifyitems = opt_in(
    Path(__file__).parent, "soak", "the long soak tests of tests/soak", "make soak")
