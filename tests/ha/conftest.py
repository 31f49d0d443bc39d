"""The failover run goes only with ``--ha`` (`make ha`); the default run does not collect it."""

from __future__ import annotations

from pathlib import Path

from tests.support.optin import opt_in

pytest_addoption, pytest_ignore_collect, pytest_collection_modifyitems = opt_in(
    Path(__file__).parent, "ha", "the failover run of tests/ha on servers of its own", "make ha")
