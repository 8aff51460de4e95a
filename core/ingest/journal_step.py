"""A sync run's last step, the journal (core.journal.upkeep.after_sync_run: positions, then the dirty pairs),
begun for each account as soon as its import is done where the database takes a second writer.

On PostgreSQL an account's step runs on a connection of its own, in its own transaction, while the run imports
its next account: much of a step is the server's work (its reads, its COPY), which the import leaves room for.
The wait after the import halves; the import itself slows a little, as both sides share the process's
interpreter. Measured on the benchmark's two-account initial import, old and new code interleaved: at 1,000,000
activities the run's median fell 3.5% and 8.5% in two sessions (the wait after the import 13.3 -> 7.2 s), at
100,000 by 1.2% over six runs each (7.6% over four in an earlier session); docs/PERFORMANCE.md §1.

The run's last account has nothing to overlap, and SQLite takes one writer at a time (an upkeep beside an import
would only wait for the import's commits), so there the step runs after the import as before. An account's step
is atomic on its own (one transaction, as a step over all the accounts is); what a failure or a crash leaves
undone stays marked dirty for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from sqlmodel import Session

from core.accounts.connections import SnapTradeIdentity
from core.journal.upkeep import after_sync_run
from core.snaptrade.client import SnapTradeClient
from core.storage.models import BrokerageAccount, BrokerageTransaction
from core.storage.planner import analyze_if_stale

log = logging.getLogger("tradistry.sync")

# What the journal's upkeep right after an import (and the trader's pages) select activities by: analyzed first
# after a large import (core.storage.planner).
READ_AFTER_IMPORT = ("user_id", "account_id", "symbol", "option_ticker", "security_type", "transaction_type",
                     "trade_date")  # fmt: skip
BESIDE_THE_IMPORT = frozenset({"postgresql"})  # databases whose writers do not wait for each other's commits


class JournalStep:
    """The journal step of one run over `accounts` (in the order the run imports them)."""

    def __init__(self, session: Session, client: SnapTradeClient, identity: SnapTradeIdentity,
                 accounts: Sequence[BrokerageAccount]) -> None:  # fmt: skip
        self.session, self.client, self.identity = session, client, identity
        beside = session.get_bind().dialect.name in BESIDE_THE_IMPORT and len(accounts) > 1
        self._last = accounts[-1].id if accounts else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-step") if beside else None
        self._begun: dict[int, Future] = {}

    def account_imported(self, account: BrokerageAccount, changed: int) -> None:
        """The account's import is committed: begin its step now, beside the next account's import."""
        if self._pool is None or account.id == self._last:
            return
        self._begun[account.id] = self._pool.submit(self._one, account.id, changed)

    def _one(self, account_id: int, changed: int) -> None:
        with Session(self.session.get_bind(), expire_on_commit=False) as own:
            account = own.get(BrokerageAccount, account_id)
            analyze_if_stale(own, BrokerageTransaction.__table__, changed, READ_AFTER_IMPORT)
            after_sync_run(own, client=self.client, identity=self.identity, accounts=[account],
                           changed={account_id: changed})  # fmt: skip

    def wait(self) -> set[int]:
        """Wait for the steps begun early; the accounts whose step ran (a failed upkeep in it is logged there,
        and its pairs stay marked). One that could not run at all is left to `finish`."""
        if self._pool is None:
            return set()
        self._pool.shutdown(wait=True)
        ran = set()
        for account_id, future in self._begun.items():
            if (error := future.exception()) is None:
                ran.add(account_id)
            else:
                log.warning("journal step of account %s beside the import failed (%s); it runs after the import",
                            account_id, type(error).__name__, exc_info=error)  # fmt: skip
        return ran

    def finish(self, accounts: Sequence[BrokerageAccount], changed: Mapping[int, int]) -> None:
        """The step of every account not done beside the import, on the run's session, after waiting for those."""
        ran = self.wait()
        rest = [a for a in accounts if a.id not in ran]
        rest_changed = {a.id: changed[a.id] for a in rest if a.id in changed}
        analyze_if_stale(self.session, BrokerageTransaction.__table__, sum(rest_changed.values()), READ_AFTER_IMPORT)
        after_sync_run(self.session, client=self.client, identity=self.identity, accounts=rest, changed=rest_changed)
