"""What an account holds: its history replayed into units per instrument, average cost and cash.

`/positions/all`, `/balances` and the accounts' net value all read this, so what the broker reports is exactly what
the history implies — except in the late-history account, whose broker also holds what it bought before its history
begins. Replays are cached per account and extended block by block as days are appended.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from threading import Lock

from sandbox.catalog import Security
from sandbox.history import AccountView
from sandbox.market import HUNDRED, ZERO, Contract, market_price
from sandbox.scenarios import BLOCK
from sandbox.trader import Fill, plan_block, plan_extra

Instrument = Security | Contract
OPTION_EVENTS = frozenset({"OPTIONEXPIRATION", "OPTIONASSIGNMENT", "OPTIONEXERCISE"})
_CACHE: OrderedDict[tuple[object, ...], tuple[int, Ledger]] = OrderedDict()
_CACHE_MAX = 512
_LOCK = Lock()


@dataclass
class Holding:
    units: Decimal = ZERO
    cost: Decimal = ZERO  # what the open units cost in total (negative for a short), average-cost method
    last_price: Decimal = ZERO  # price of the last trade, per share or per contract share


@dataclass
class Ledger:
    holdings: dict[Instrument, Holding] = field(default_factory=dict)
    cash: Decimal = ZERO

    def copy(self) -> Ledger:
        return Ledger({k: Holding(h.units, h.cost, h.last_price) for k, h in self.holdings.items()}, self.cash)

    def apply(self, f: Fill) -> None:
        if f.amount is not None:
            self.cash += f.amount
        if not f.units:
            return
        inst = f.contract or f.sec
        assert inst is not None
        h = self.holdings.get(inst)
        if h is None:
            h = self.holdings[inst] = Holding()
        before, after = h.units, h.units + f.units
        if f.price:
            h.last_price = f.price
        if f.type in OPTION_EVENTS or after == 0:
            del self.holdings[inst]  # flat: a million-row history trades tens of thousands of contracts
            return
        if before == 0 or (before > 0) == (f.units > 0):  # opening, or adding in the same direction
            h.cost += f.price * f.units * (HUNDRED if f.contract else 1)
        elif (before > 0) == (after > 0):  # reducing
            h.cost = h.cost * after / before
        else:  # through zero: what is left was opened at this price
            h.cost = f.price * after * (HUNDRED if f.contract else 1)
        h.units = after


def replay(view: AccountView) -> Ledger:
    """The imported history, replayed: every base row and every backdated row."""
    full = view.count // BLOCK
    with _LOCK:
        done, ledger = _CACHE.get(view.identity, (0, Ledger()))
    if done > full:  # cannot happen for a live account (histories only grow); start over to be safe
        done, ledger = 0, Ledger()
    if done < full:
        ledger = ledger.copy()
        for block in range(done, full):
            scenario = view.scenario(block)
            for f in plan_block(view, block, view.block_stamps(block, BLOCK, scenario), scenario):
                ledger.apply(f)
        with _LOCK:
            _CACHE[view.identity] = (full, ledger)
            _CACHE.move_to_end(view.identity)
            while len(_CACHE) > _CACHE_MAX:
                _CACHE.popitem(last=False)
    out = ledger.copy()
    tail = view.count - full * BLOCK
    if tail:
        for f in plan_block(view, full, view.block_stamps(full, tail)):
            out.apply(f)
    for e in view.extras:
        out.apply(plan_extra(view, e.serial, e.kind, e.day))
    return out


def broker_holdings(view: AccountView) -> Ledger:
    """What the broker holds: the history's units, plus what the late-history account bought before it."""
    ledger = replay(view)
    for sec, units in view.held_before_history.items():
        h = ledger.holdings.setdefault(sec, Holding())
        h.units += units
        h.cost += units * (sec.price * Decimal("0.8")).quantize(Decimal("0.01"))
    return ledger


def current_price(view: AccountView, inst: Instrument, h: Holding, day: int) -> Decimal:
    """Today's price per share (per contract share for options)."""
    if isinstance(inst, Contract):
        return h.last_price
    return market_price(inst, day, None, view.price_factor(inst.symbol, view.count // BLOCK + 1))
