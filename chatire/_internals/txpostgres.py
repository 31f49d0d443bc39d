"""txpostgres' private names chatire relies on: the hook that runs one transaction."""

from __future__ import annotations

import inspect
from typing import Any

from twisted.internet.defer import Deferred
from txpostgres import txpostgres

from chatire._internals import check

NAMES = {
    "Connection._runInteraction": hasattr(txpostgres.Connection, "_runInteraction")
    and "self._runInteraction" in inspect.getsource(txpostgres.Connection.runInteraction),
}
#: Whether chatire runs its transactions itself (BEGIN riding with the first statement);
#: if not, txpostgres' public runInteraction sends BEGIN and COMMIT of its own.
OWN_TRANSACTIONS = check("txpostgres", NAMES)


class Connection(txpostgres.Connection):
    """A txpostgres Connection whose interactions run through ``transaction`` when it can."""

    def transaction(self, interaction: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run one interaction as a transaction of one's own (a subclass says how)."""
        raise NotImplementedError

    if OWN_TRANSACTIONS:
        def _runInteraction(self, interaction: Any, *args: Any,
                            **kwargs: Any) -> Deferred[Any]:
            return self.transaction(interaction, *args, **kwargs)
