"""Prices and instruments: the path each security's price follows, and option contracts.

Prices are a smooth function of the day (a drift and a slow wave per symbol), so every account of every user sees
the same market; trades add a little noise around it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sandbox.catalog import Security

Q2 = Decimal("0.01")
Q4 = Decimal("0.0001")
Q8 = Decimal("0.00000001")
ZERO = Decimal(0)
HUNDRED = Decimal(100)
REF_DAY = date(2023, 1, 1).toordinal()
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def price_quantum(price: Decimal) -> Decimal:
    return Q4 if price < 2 else Q2


_PATH: dict[tuple[str, int], float] = {}


def _path(sec: Security, day: int) -> float:
    """The price path's factor over the security's reference price on a day (cached: a history revisits days)."""
    key = (sec.symbol, day)
    f = _PATH.get(key)
    if f is None:
        if len(_PATH) > 500_000:
            _PATH.clear()
        t = day - REF_DAY
        phase = (sum(map(ord, sec.symbol)) % 17) / 3.0
        drift = 0.0004 if sec.type_code == "crypto" else 0.00025
        f = _PATH[key] = math.exp(drift * t) * (1 + 0.12 * math.sin(t / 53.0 + phase))
    return f


def market_price(sec: Security, day: int, rng: random.Random | None = None, divisor: int = 1) -> Decimal:
    """A smooth, deterministic price path, with a little per-trade noise when an RNG is given."""
    noise = 1.0 if rng is None else 1 + (rng.random() - 0.5) * 0.02
    f = _path(sec, day) * noise / divisor
    q = Q4 if sec.price < 2 * divisor else Q2
    return (sec.price * Decimal(f"{max(f, 0.05 / divisor):.6f}")).quantize(q, ROUND_HALF_UP)


def occ(root: str, expiry: int, cp: str, strike: Decimal, padded: bool) -> str:
    d = date.fromordinal(expiry)
    r = root.ljust(6) if padded else root
    return f"{r}{d:%y%m%d}{cp}{int(strike * 1000):08d}"


@dataclass(frozen=True)
class Contract:
    """One option contract; an instrument of its own, keyed by its OCC fields."""

    underlying: Security
    cp: str  # "C" or "P"
    strike: Decimal
    expiry: int
    qty: int = field(compare=False)  # contracts traded; not part of what the contract is

    def ticker(self, padded: bool) -> str:
        return occ(self.underlying.raw_symbol, self.expiry, self.cp, self.strike, padded)

    def label(self) -> str:
        d = date.fromordinal(self.expiry)
        kind = "Call" if self.cp == "C" else "Put"
        return f"{self.underlying.symbol} {MONTHS[d.month - 1]} {d.day:02d} {d.year} {self.strike:.2f} {kind}"
