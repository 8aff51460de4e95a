"""Deterministic activity histories: row i of an account is computed from (seed, account, i) alone.

Any page of a million-row history is produced directly, without materializing the rest. Rows come in blocks of
eight whose "scenario" (equity round trip, option open/close, assignment, ...) is picked by hashing the block number,
so related rows (an order and its commission, a dividend and its withholding) stay together. Dates are a monotone
function of the index, which makes "newest first" simply "highest index first". Mutations (re-keys, backdated rows)
are small overlays kept in `AccountView`.
"""

from __future__ import annotations

import json
import math
import random
import re
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from hashlib import blake2b
from threading import Lock

from sandbox import catalog
from sandbox.catalog import CURRENCIES, Security

M64 = (1 << 64) - 1
BLOCK = 8
T1_SETTLEMENT_FROM = date(2024, 5, 28).toordinal()  # US moved from T+2 to T+1 settlement on this day


def mix64(x: int) -> int:
    """splitmix64 finalizer: a cheap, well-distributed integer hash for the hot path."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def h64(*parts: object) -> int:
    """Stable 64-bit hash of a few values (not Python's salted hash())."""
    return int.from_bytes(blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def uuid_from(x: int) -> str:
    """A version-4-looking UUID string derived from an integer."""
    a = mix64(x)
    b = mix64(x ^ 0x5DEECE66D)
    # set the version nibble to 4 and the variant bits to 10xx, like uuid4()
    h = ((a & 0xFFFFFFFFFFFF0FFF) | 0x4000) << 64 | (b & 0x3FFFFFFFFFFFFFFF) | 0x8000000000000000
    s = f"{h:032x}"
    return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]


# ---------------------------------------------------------------------------------------------------------------------
# Activity kinds and scenarios. A trailing "+" on a kind means "same timestamp as the previous row" (linked rows).

KIND_TYPE: dict[str, str] = {
    "BUY_A": "BUY", "BUY_B": "BUY", "BUY_E": "BUY", "BUY_F": "BUY", "BUYFX_U": "BUY",
    "SELL_A": "SELL", "SELL_B": "SELL", "SELL_E": "SELL", "SELLFX_U": "SELL",
    "CBUY_A": "BUY", "CBUY_B": "BUY", "CBUY_C": "BUY", "CSELL_A": "SELL", "CSELL_B": "SELL",
    "TWIN": "", "COMMISSION": "FEE", "DIV_A": "DIVIDEND", "DIV_B": "DIVIDEND", "DIV_E": "DIVIDEND",
    "DIV_F": "DIVIDEND", "DIVFX_U": "DIVIDEND", "WHT": "TAX", "REI": "REI", "CONTRIB": "CONTRIBUTION",
    "WITHDRAW": "WITHDRAWAL", "FEE": "FEE", "INTEREST": "INTEREST", "INTEREST_NODATE": "INTEREST", "TAX": "TAX",
    "SPLIT_A": "SPLIT", "XFER_IN_B": "EXTERNAL_ASSET_TRANSFER_IN", "CXFER_IN_A": "EXTERNAL_ASSET_TRANSFER_IN",
    "CXFER_OUT_B": "EXTERNAL_ASSET_TRANSFER_OUT", "ICT_OUT": "INTERNAL_CASH_TRANSFER_OUT",
    "ICT_IN": "INTERNAL_CASH_TRANSFER_IN", "TRANSFER": "TRANSFER", "JOURNAL": "JOURNAL",
    "MISC_CREDIT": "MISC_CREDIT", "STOCK_DIV_A": "STOCK_DIVIDEND", "ROC_E": "RETURN_OF_CAPITAL",
    "STAKE_C": "STAKING_REWARD", "BTO_C1": "BUY", "STC_C1": "SELL", "STO_C2": "SELL", "BTC_C2": "BUY",
    "EXP_C1": "OPTIONEXPIRATION", "ASSIGN_C2": "OPTIONASSIGNMENT", "ASSIGN_STOCK": "BUY",
    "EXER_C1": "OPTIONEXERCISE", "EXER_STOCK": "BUY",
}  # fmt: skip

_US_CORPORATE = ["SPLIT_A", "XFER_IN_B", "ICT_OUT", "TRANSFER", "STOCK_DIV_A", "INTEREST_NODATE", "ROC_E", "ICT_IN"]
_US_EQUITY = ["CONTRIB", "BUY_A", "COMMISSION+", "BUY_E", "DIV_A", "SELL_A", "INTEREST", "FEE"]
_US_TWINS = ["BUY_A", "TWIN+", "SELL_E", "DIV_B", "WHT+", "JOURNAL", "MISC_CREDIT", "CONTRIB"]
_US_OPT_CLOSE = ["BUY_A", "BTO_C1", "DIV_E", "STC_C1", "STO_C2", "BTC_C2", "SELL_B", "TAX"]

SCENARIOS: dict[str, list[tuple[int, list[str]]]] = {
    "us_margin": [
        (4, _US_EQUITY),
        (3, _US_OPT_CLOSE),
        (2, ["BTO_C1", "STO_C2", "DIV_E", "REI+", "EXP_C1", "ASSIGN_C2", "ASSIGN_STOCK+", "WITHDRAW"]),
        (2, ["BTO_C1", "BUY_B", "EXER_C1", "EXER_STOCK+", "SELL_A", "DIV_A", "WHT+", "INTEREST"]),
        (2, _US_TWINS),
        (1, _US_CORPORATE),
    ],
    "us_ira": [(4, _US_EQUITY), (1, _US_OPT_CLOSE), (2, _US_TWINS), (1, _US_CORPORATE)],
    "crypto": [
        (4, ["CONTRIB", "CBUY_A", "COMMISSION+", "CBUY_B", "CSELL_A", "STAKE_C", "CBUY_C", "FEE"]),
        (2, ["CXFER_IN_A", "CSELL_B", "CBUY_A", "TWIN+", "WITHDRAW", "STAKE_C", "CXFER_OUT_B", "INTEREST"]),
    ],
    "ca_cad": [
        (4, ["CONTRIB", "BUY_A", "BUYFX_U", "COMMISSION+", "DIV_A", "SELL_E", "DIVFX_U", "INTEREST"]),
        (2, ["BUY_E", "TWIN+", "SELLFX_U", "DIV_B", "REI+", "JOURNAL", "FEE", "WITHDRAW"]),
        (1, ["SPLIT_A", "XFER_IN_B", "ICT_IN", "TRANSFER", "INTEREST_NODATE", "ROC_E", "MISC_CREDIT", "TAX"]),
    ],
    "ca_usd": [(4, _US_EQUITY), (2, _US_TWINS), (1, _US_CORPORATE)],
    "dateonly": [
        (4, ["CONTRIB", "BUY_A", "BUY_F", "DIV_F", "REI+", "SELL_A", "FEE", "INTEREST"]),
        (2, ["BUY_E", "TWIN+", "SELL_B", "DIV_A", "WHT+", "CONTRIB", "MISC_CREDIT", "JOURNAL"]),
        (1, _US_CORPORATE),
    ],
}

# Kinds a backdated (late-arriving) row may have.
LATE_KINDS: dict[str, list[str]] = {
    "us_margin": ["BUY_A", "SELL_A", "DIV_A", "FEE", "INTEREST", "CONTRIB"],
    "us_ira": ["BUY_A", "SELL_A", "DIV_A", "INTEREST", "CONTRIB"],
    "crypto": ["CBUY_A", "CSELL_A", "STAKE_C", "FEE", "CONTRIB"],
    "ca_cad": ["BUY_A", "BUYFX_U", "DIV_A", "INTEREST", "CONTRIB"],
    "ca_usd": ["BUY_A", "SELL_A", "DIV_A", "INTEREST", "CONTRIB"],
    "dateonly": ["BUY_A", "SELL_A", "DIV_F", "FEE", "CONTRIB"],
}

UNIVERSES: dict[str, dict[str, list[Security]]] = {
    "us_margin": {"A": catalog.US_STOCKS, "B": catalog.US_STOCKS, "E": catalog.US_ETFS},
    "us_ira": {"A": catalog.US_STOCKS, "B": catalog.US_STOCKS, "E": catalog.US_ETFS},
    "crypto": {"A": catalog.CRYPTO[:2], "B": catalog.CRYPTO[1:], "C": catalog.CRYPTO},
    "ca_cad": {"A": catalog.CA_STOCKS, "B": catalog.CA_STOCKS, "E": catalog.CA_ETFS, "U": catalog.US_STOCKS},
    "ca_usd": {"A": catalog.US_STOCKS, "B": catalog.US_STOCKS, "E": catalog.US_ETFS},
    "dateonly": {"A": catalog.US_STOCKS, "B": catalog.US_STOCKS, "E": catalog.US_ETFS, "F": catalog.US_FUNDS},
}

TYPE_CODES: dict[str, int] = {}


def type_code(type_name: str) -> int:
    """Small integer per activity type, used by the per-account type array that makes `type=` filters cheap."""
    code = TYPE_CODES.get(type_name)
    if code is None:
        code = TYPE_CODES[type_name] = len(TYPE_CODES) + 1
    return code


@dataclass(frozen=True)
class Scenario:
    kinds: tuple[str, ...]
    linked: tuple[bool, ...]  # row shares the previous row's timestamp
    types: bytes  # type code per row


def _compile(profile: str) -> tuple[list[int], list[Scenario]]:
    cumulative, scenarios, total = [], [], 0
    for weight, kinds in SCENARIOS[profile]:
        assert len(kinds) == BLOCK
        bare = tuple(k.rstrip("+") for k in kinds)
        types = []
        for i, k in enumerate(bare):
            # a twin repeats the row before it, so it has that row's type
            types.append(KIND_TYPE[bare[i - 1]] if k == "TWIN" else KIND_TYPE[k])
        scenarios.append(Scenario(bare, tuple(k.endswith("+") for k in kinds), bytes(type_code(t) for t in types)))
        total += weight
        cumulative.append(total)
    return cumulative, scenarios


COMPILED = {profile: _compile(profile) for profile in SCENARIOS}
for _kind in ("BUY", "SELL", "DIVIDEND"):
    type_code(_kind)


# ---------------------------------------------------------------------------------------------------------------------
# Timeline: index -> timestamp. Segment k spreads `count` rows evenly over `days` days starting at `first_day`.


@dataclass(frozen=True)
class Segment:
    start: int
    count: int
    first_day: int  # date ordinal
    days: int


@dataclass(frozen=True)
class Extra:
    """A backdated row: lives outside the index timeline, placed by its own timestamp."""

    serial: int
    day: int
    secs: int
    kind: str
    type_code: int

    @property
    def stamp(self) -> int:
        return self.day * 86400 + self.secs


@dataclass(frozen=True)
class Profile:
    """Per-account constants needed to render rows."""

    key: str
    currency: str
    institution: str
    date_only: bool
    crypto: bool


@dataclass(frozen=True)
class Malformed:
    rate: float = 0.0
    seed: int = 0


@dataclass
class AccountView:
    """An immutable-by-convention snapshot of one account's history parameters and overlays."""

    account_id: str
    key: int
    profile: Profile
    segments: tuple[Segment, ...]
    extras: tuple[Extra, ...] = ()  # sorted newest first
    rekeys: dict[int, str] = field(default_factory=dict)  # index (or ~serial for extras) -> current id
    malformed: Malformed = Malformed()
    starts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.starts = tuple(s.start for s in self.segments)

    @property
    def count(self) -> int:
        last = self.segments[-1]
        return last.start + last.count

    # -- scenario and time --------------------------------------------------------------------------------------------
    def scenario(self, block: int) -> Scenario:
        cumulative, scenarios = COMPILED[self.profile.key]
        pick = mix64(self.key ^ mix64(block * 2 + 1)) % cumulative[-1]
        return scenarios[bisect_right(cumulative, pick)]

    def raw_stamp(self, i: int) -> tuple[int, int]:
        seg = self.segments[bisect_right(self.starts, i) - 1]  # callers never append empty segments
        rel = i - seg.start
        day_rel = rel * seg.days // seg.count
        day_start = -(-day_rel * seg.count // seg.days)
        c = -(-(day_rel + 1) * seg.count // seg.days) - day_start
        if self.profile.date_only:
            return seg.first_day + day_rel, 0
        lo, span = (0, 86400) if self.profile.crypto else (48600, 23400)  # crypto trades around the clock
        jitter = mix64(self.key + i) % span
        return seg.first_day + day_rel, lo + ((rel - day_start) * span + jitter) // c

    def stamp(self, i: int) -> tuple[int, int]:
        """Effective (day, seconds) of base row i; linked rows copy their predecessor's time."""
        while i > 0 and self.scenario(i // BLOCK).linked[i % BLOCK]:
            i -= 1
        return self.raw_stamp(i)

    def first_index_after(self, limit_stamp: int) -> int:
        """Smallest index whose effective stamp (day*86400+secs) is > limit_stamp; indices are monotone in time."""
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            d, s = self.stamp(mid)
            if d * 86400 + s > limit_stamp:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def first_day(self) -> int | None:
        days = [e.day for e in self.extras]
        if self.count:
            days.append(self.stamp(0)[0])
        return min(days) if days else None

    # -- identity -----------------------------------------------------------------------------------------------------
    def row_id(self, i: int) -> str:
        # page() inlines this formula on its fast path; keep the two in step
        return self.rekeys.get(i) or uuid_from(self.key ^ (i * 0x2545F4914F6CDD1D))

    def extra_id(self, serial: int) -> str:
        return self.rekeys.get(~serial) or uuid_from(self.key ^ mix64(serial + 0x7F4A7C15))

    def is_malformed(self, token: int) -> int:
        """-1 for a good row, else which kind of damage this row gets (reproducible by the faults seed)."""
        m = self.malformed
        if m.rate <= 0.0:
            return -1
        h = mix64(self.key ^ mix64(token) ^ (m.seed * 0x9E3779B97F4A7C15 & M64))
        if (h >> 11) / float(1 << 53) >= m.rate:
            return -1
        return h % len(_DAMAGE)


# ---------------------------------------------------------------------------------------------------------------------
# Rendering rows to JSON text. Numbers are Decimal rendered with format(..., "f") so there are no float artifacts.

Q2 = Decimal("0.01")
Q4 = Decimal("0.0001")
Q8 = Decimal("0.00000001")
ZERO = Decimal(0)
_REF_DAY = date(2023, 1, 1).toordinal()
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_CUR_JSON = {code: json.dumps(obj, separators=(",", ":")) for code, obj in CURRENCIES.items()}
_SYMBOL_JSON: dict[str, str] = {}


def _num(d: Decimal) -> str:
    if not d:
        return "0"
    return format(d, "f")


def _jstr(text: str) -> str:
    """JSON string literal; our generated texts rarely need escaping, so skip json.dumps when they don't."""
    if '"' in text or "\\" in text or not text.isascii():
        return json.dumps(text)
    return '"' + text + '"'


def _symbol_json(sec: Security) -> str:
    text = _SYMBOL_JSON.get(sec.symbol)
    if text is None:
        text = _SYMBOL_JSON[sec.symbol] = json.dumps(json.loads(sec.json), separators=(",", ":"))
    return text


def _price_on(sec: Security, day: int, rng: random.Random) -> Decimal:
    """A smooth, deterministic price path with a little per-trade noise."""
    t = day - _REF_DAY
    phase = (sum(map(ord, sec.symbol)) % 17) / 3.0
    drift = 0.0004 if sec.type_code == "crypto" else 0.00025
    f = math.exp(drift * t) * (1 + 0.12 * math.sin(t / 53.0 + phase)) * (1 + (rng.random() - 0.5) * 0.02)
    q = Q4 if sec.price < 2 else Q2
    return (sec.price * Decimal(f"{max(f, 0.05):.6f}")).quantize(q, ROUND_HALF_UP)


_ISO_DAYS: dict[int, str] = {}
_SETTLE_DAYS: dict[tuple[int, int], int] = {}
_OPTION_JSON: dict[tuple[str, str], str] = {}


def _iso_day(day: int) -> str:
    s = _ISO_DAYS.get(day)
    if s is None:
        s = _ISO_DAYS[day] = date.fromordinal(day).isoformat()
    return s


def _settle(day: int, business_days: int) -> int:
    key = (day, business_days)
    hit = _SETTLE_DAYS.get(key)
    if hit is None:
        hit = _SETTLE_DAYS[key] = _settle_uncached(day, business_days)
    return hit


def _settle_uncached(day: int, business_days: int) -> int:
    d = date.fromordinal(day)
    while business_days:
        d += timedelta(days=1)
        if d.weekday() < 5:
            business_days -= 1
    return d.toordinal()


def _occ(root: str, expiry: int, cp: str, strike: Decimal, padded: bool) -> str:
    d = date.fromordinal(expiry)
    r = root.ljust(6) if padded else root
    return f"{r}{d:%y%m%d}{cp}{int(strike * 1000):08d}"


@dataclass
class _Contract:
    underlying: Security
    cp: str  # "C" or "P"
    strike: Decimal
    expiry: int
    qty: int = 1

    def option_json(self, padded: bool) -> str:
        ticker = _occ(self.underlying.symbol.split(".")[0], self.expiry, self.cp, self.strike, padded)
        key = (ticker, self.underlying.symbol)
        text = _OPTION_JSON.get(key)
        if text is None:
            if len(_OPTION_JSON) > 200_000:  # bounded: contracts are cheap to rebuild
                _OPTION_JSON.clear()
            text = _OPTION_JSON[key] = self._option_json(ticker)
        return text

    def _option_json(self, ticker: str) -> str:
        # SnapTrade keys option symbols by the ticker string it received, so the two spellings get different ids
        oid = catalog.stable_id("option", ticker)
        strike = _num(self.strike.normalize()) if self.strike == self.strike.to_integral() else _num(self.strike)
        return (
            f'{{"id":"{oid}","ticker":"{ticker}","option_type":"{"CALL" if self.cp == "C" else "PUT"}",'
            f'"strike_price":{strike},"expiration_date":"{_iso_day(self.expiry)}",'
            f'"underlying_symbol":{_symbol_json(self.underlying)},"is_mini_option":false}}'
        )

    def label(self) -> str:
        d = date.fromordinal(self.expiry)
        kind = "Call" if self.cp == "C" else "Put"
        return f"{self.underlying.symbol} {_MONTHS[d.month - 1]} {d.day:02d} {d.year} {self.strike:.2f} {kind}"


def _next_friday(day: int) -> int:
    return day + (4 - date.fromordinal(day).weekday()) % 7


def _ri(rng: random.Random, a: int, b: int) -> int:
    """randint without Random.randint's overhead (hot path)."""
    return a + int(rng.random() * (b - a + 1))


def _pick(rng: random.Random, seq: list | tuple):  # noqa: ANN201 - any element type
    return seq[int(rng.random() * len(seq))]


class _BlockRenderer:
    """Renders the rows of one block (or one late row); all randomness comes from one seeded RNG."""

    def __init__(self, profile: Profile, block_seed: int, day0: int) -> None:
        self.p = profile
        self.rng = random.Random(block_seed)
        self.seed = block_seed
        self.day0 = day0
        rng = self.rng
        uni = UNIVERSES[profile.key]
        self.sec = {slot: _pick(rng, pool) for slot, pool in uni.items()}
        if "B" in self.sec and self.sec["B"] is self.sec["A"]:
            pool = uni["B"]
            self.sec["B"] = pool[(pool.index(self.sec["A"]) + 1) % len(pool)]
        self.cur = _CUR_JSON[profile.currency]
        self.inst = json.dumps(profile.institution)
        self.prev_body = ""
        self.prev_amount = ZERO
        self.prev_ref: str | None = None
        self.prev_sec: Security | None = None
        self.contracts: dict[str, _Contract] = {}
        self.ref_n = 0

    def contract(self, name: str) -> _Contract:
        c = self.contracts.get(name)
        if c is None:
            rng = self.rng
            under = self.sec["A"]
            spot = _price_on(under, self.day0, rng)
            step = Decimal(5) if spot >= 100 else Decimal("2.5") if spot >= 25 else Decimal(1)
            strike = (spot / step).quantize(Decimal(1)) * step + step * _ri(rng, -2, 3)
            if strike <= 0:
                strike = step
            # long calls (C1) run 2-10 weeks, short puts (C2) expire within days so expiry/assignment rows are close
            expiry = _next_friday(self.day0 + (_ri(rng, 14, 70) if name == "C1" else _ri(rng, 1, 6)))
            c = self.contracts[name] = _Contract(under, "C" if name == "C1" else "P", strike, expiry, _ri(rng, 1, 5))
        return c

    def new_ref(self) -> str:
        self.ref_n += 1
        return f"{(mix64(self.seed + self.ref_n) & 0xFFFFFFFFFFFF):012X}"

    def row(
        self,
        *,
        sym: str = "null",
        opt: str = "null",
        price: Decimal = ZERO,
        units: Decimal = ZERO,
        amount: Decimal | None = ZERO,
        type_: str,
        option_type: str = "",
        description: str,
        trade: str,
        settle: str,
        fee: Decimal = ZERO,
        fx: Decimal | None = None,
        ref: str | None = None,
        currency: str | None = None,
    ) -> str:
        return (
            f'"symbol":{sym},"option_symbol":{opt},"price":{_num(price)},"units":{_num(units)},'
            f'"amount":{"null" if amount is None else _num(amount)},"currency":{currency or self.cur},'
            f'"type":"{type_}","option_type":"{option_type}","description":{_jstr(description)},'
            f'"trade_date":{trade},"settlement_date":"{settle}","fee":{_num(fee)},'
            f'"fx_rate":{"null" if fx is None else _num(fx)},"institution":{self.inst},'
            f'"external_reference_id":{"null" if ref is None else chr(34) + ref + chr(34)}'
        )

    def render(self, kind: str, day: int, secs: int) -> str:
        """JSON body (without id and braces) of one row of `kind` at (day, secs)."""
        rng, p = self.rng, self.p
        if p.date_only:
            iso = _iso_day(day)
            trade = f'"{iso}"' if rng.random() < 0.5 else f'"{iso}T00:00:00Z"'
        else:
            trade = f'"{_iso_day(day)}T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}Z"'
        cash_settle = f"{_iso_day(day)}T00:00:00Z"
        trade_settle = f"{_iso_day(_settle(day, 1 if day >= T1_SETTLEMENT_FROM or p.crypto else 2))}T00:00:00Z"
        if kind == "TWIN":
            return self.prev_body
        body = self._render(kind, day, trade, cash_settle, trade_settle)
        self.prev_body = body
        return body

    def _trade(self, kind: str, day: int, trade: str, settle: str) -> str:
        rng = self.rng
        slot = kind[-1]
        sell = "SELL" in kind
        crypto = kind.startswith("C")
        fx_trade = "FX" in kind
        sec = self.sec[slot]
        price = _price_on(sec, day, rng)
        fx = None
        if crypto:
            units = (Decimal(_ri(rng, 10_000, 2_000_000_000)) / (price * 100_000_000)).quantize(Q8)
            if units == 0:
                units = Q8
            fee = (price * units * Decimal("0.005")).quantize(Q2)
        else:
            budget = _ri(rng, 500, 20_000)
            units = Decimal(max(1, int(budget / float(price))))
            fee = ZERO if rng.random() < 0.7 else Decimal(_pick(rng, ["4.95", "6.95", "9.99", "0.35"]))
        if fx_trade:
            fx = Decimal(f"{1.30 + 0.06 * math.sin((day - _REF_DAY) / 40.0) + rng.random() * 0.01:.4f}")
            price = (price * fx).quantize(Q2, ROUND_HALF_UP)
        gross = (price * units).quantize(Q2, ROUND_HALF_UP)
        amount = gross - fee if sell else -(gross + fee)
        signed_units = -units if sell else units
        verb = "Sold" if sell else "Bought"
        ref = self.new_ref()
        self.prev_ref, self.prev_sec, self.prev_amount = ref, sec, amount
        return self.row(
            sym=_symbol_json(sec),
            price=price,
            units=signed_units,
            amount=amount,
            type_="SELL" if sell else "BUY",
            description=f"{verb} {_num(units)} {sec.symbol} @ {_num(price)}",
            trade=trade,
            settle=settle,
            fee=fee,
            fx=fx,
            ref=ref,
        )

    def _render(self, kind: str, day: int, trade: str, cash_settle: str, trade_settle: str) -> str:
        rng = self.rng
        if kind[:4] in ("BUY_", "SELL", "CBUY", "CSEL", "BUYF") or kind.startswith("SELLFX"):
            return self._trade(kind, day, trade, trade_settle)
        if kind == "COMMISSION":
            fee = Decimal(_pick(rng, ["0.99", "4.95", "6.95", "1.25"]))
            sec = self.prev_sec
            return self.row(
                sym="null" if sec is None else _symbol_json(sec),
                amount=-fee,
                type_="FEE",
                description="Commission",
                trade=trade,
                settle=cash_settle,
                fee=fee,
                ref=self.prev_ref,
            )
        if kind.startswith("DIV"):
            sec = self.sec["U" if kind == "DIVFX_U" else kind[-1]]
            per_share = sec.dividend if sec.dividend else Decimal("0.10")
            shares = _ri(rng, 5, 400)
            fx = None
            amount = (per_share * shares).quantize(Q2, ROUND_HALF_UP)
            if kind == "DIVFX_U":
                fx = Decimal(f"{1.31 + rng.random() * 0.07:.4f}")
                amount = (amount * fx).quantize(Q2, ROUND_HALF_UP)
            if amount <= 0:
                amount = Q2
            ref = self.new_ref()
            self.prev_ref, self.prev_sec, self.prev_amount = ref, sec, amount
            return self.row(
                sym=_symbol_json(sec),
                amount=amount,
                type_="DIVIDEND",
                description=f"{sec.description} dividend",
                trade=trade,
                settle=cash_settle,
                fx=fx,
                ref=ref,
            )
        if kind == "WHT":
            tax = (self.prev_amount * Decimal("0.15")).quantize(Q2, ROUND_HALF_UP) or Q2
            sec = self.prev_sec
            return self.row(
                sym="null" if sec is None else _symbol_json(sec),
                amount=-tax,
                type_="TAX",
                description="Non-resident tax withheld",
                trade=trade,
                settle=cash_settle,
                ref=self.prev_ref,
            )
        if kind == "REI":
            sec = self.prev_sec or self.sec["E"]
            price = _price_on(sec, self.day0, rng)
            cash = self.prev_amount if self.prev_amount > 0 else Decimal("12.34")
            units = (cash / price).quantize(Q4) or Q4
            return self.row(
                sym=_symbol_json(sec),
                price=price,
                units=units,
                amount=-cash,
                type_="REI",
                description=f"Dividend reinvestment {sec.symbol}",
                trade=trade,
                settle=cash_settle,
                ref=self.prev_ref,
            )
        if kind in ("CONTRIB", "WITHDRAW", "FEE", "INTEREST", "INTEREST_NODATE", "TAX", "ICT_OUT", "ICT_IN"):
            return self._cash(kind, trade, cash_settle)
        if kind in ("TRANSFER", "JOURNAL", "MISC_CREDIT", "ROC_E"):
            return self._cash(kind, trade, cash_settle)
        if kind in ("SPLIT_A", "STOCK_DIV_A", "XFER_IN_B", "CXFER_IN_A", "CXFER_OUT_B", "STAKE_C"):
            return self._units_only(kind, day, trade, cash_settle)
        return self._option(kind, day, trade, trade_settle)

    def _cash(self, kind: str, trade: str, settle: str) -> str:
        rng = self.rng
        sym = "null"
        ref = None
        if kind == "CONTRIB":
            amount, type_, desc = (
                Decimal(_pick(rng, [100, 250, 500, 1000, 2500, 5000, 6500])),
                "CONTRIBUTION",
                "Deposit",
            )
            ref = self.new_ref()
        elif kind == "WITHDRAW":
            amount, type_, desc = -Decimal(_pick(rng, [50, 200, 750, 1500])), "WITHDRAWAL", "Withdrawal"
            ref = self.new_ref()
        elif kind == "FEE":
            amount, type_, desc = -Decimal(_pick(rng, ["2.50", "10.00", "25.00", "0.07"])), "FEE", "Account fee"
        elif kind in ("INTEREST", "INTEREST_NODATE"):
            amount = (Decimal(_ri(rng, 1, 4000)) / 100).quantize(Q2)
            type_, desc = "INTEREST", "Interest on credit balance"
        elif kind == "TAX":
            amount, type_, desc = -(Decimal(_ri(rng, 5, 9000)) / 100), "TAX", "Foreign tax paid"
        elif kind == "ICT_OUT":
            amount, type_, desc = (
                -Decimal(_pick(rng, [100, 300, 1000])),
                "INTERNAL_CASH_TRANSFER_OUT",
                "Transfer to savings",
            )
        elif kind == "ICT_IN":
            amount, type_, desc = (
                Decimal(_pick(rng, [100, 300, 1000])),
                "INTERNAL_CASH_TRANSFER_IN",
                "Transfer from savings",
            )
        elif kind == "TRANSFER":
            amount = Decimal(_pick(rng, [-500, -120, 80, 400, 2000]))
            type_, desc = "TRANSFER", "Cash transfer"
        elif kind == "JOURNAL":
            amount = (Decimal(_ri(rng, -5000, 5000)) / 100).quantize(Q2) or Q2
            type_, desc = "JOURNAL", "Journal entry"
        elif kind == "MISC_CREDIT":
            amount, type_, desc = (Decimal(_ri(rng, 1, 2500)) / 100).quantize(Q2), "MISC_CREDIT", "Miscellaneous credit"
        else:  # ROC_E
            sec = self.sec["E"]
            sym = _symbol_json(sec)
            amount, type_, desc = (
                (Decimal(_ri(rng, 100, 9000)) / 100).quantize(Q2),
                "RETURN_OF_CAPITAL",
                f"{sec.symbol} return of capital",
            )
        return self.row(
            sym=sym,
            amount=amount,
            type_=type_,
            description=desc,
            trade="null" if kind == "INTEREST_NODATE" else trade,
            settle=settle,
            ref=ref,
        )

    def _units_only(self, kind: str, day: int, trade: str, settle: str) -> str:
        rng = self.rng
        slot = kind[-1]
        sec = self.sec[slot]
        price = ZERO
        if kind == "SPLIT_A":
            ratio = _pick(rng, [2, 3, 4, 10])
            units, desc = Decimal(_ri(rng, 5, 100) * (ratio - 1)), f"{ratio}-for-1 stock split {sec.symbol}"
        elif kind == "STOCK_DIV_A":
            units, desc = Decimal(_ri(rng, 1, 9)), f"Stock dividend {sec.symbol}"
        elif kind == "STAKE_C":
            price = _price_on(sec, day, rng)
            units = (Decimal(_ri(rng, 1, 500_000)) / 100_000_000).quantize(Q8) or Q8
            desc = f"Staking reward {sec.symbol}"
        else:
            crypto = kind.startswith("C")
            price = _price_on(sec, day, rng)
            units = (
                (Decimal(_ri(rng, 1_000, 90_000_000)) / 100_000_000).quantize(Q8)
                if crypto
                else Decimal(_ri(rng, 1, 200))
            )
            out = kind.endswith("OUT_B")
            units = -units if out else units
            desc = f"{'Transfer out' if out else 'Transfer in'} {sec.symbol}"
        return self.row(
            sym=_symbol_json(sec),
            price=price,
            units=units,
            amount=ZERO,
            type_=KIND_TYPE[kind],
            description=desc,
            trade=trade,
            settle=settle,
        )

    def _option(self, kind: str, day: int, trade: str, settle: str) -> str:
        rng = self.rng
        padded = rng.random() < 0.5  # both OCC spellings occur for the same contract
        if kind in ("ASSIGN_STOCK", "EXER_STOCK"):
            c = self.contract("C2" if kind == "ASSIGN_STOCK" else "C1")
            units = Decimal(c.qty * 100)
            amount = -(c.strike * units).quantize(Q2)
            return self.row(
                sym=_symbol_json(c.underlying),
                price=c.strike,
                units=units,
                amount=amount,
                type_="BUY",
                description=f"Bought {c.qty * 100} {c.underlying.symbol} @ {_num(c.strike)} ({'assignment' if kind == 'ASSIGN_STOCK' else 'exercise'})",
                trade=trade,
                settle=settle,
                ref=self.prev_ref,
            )
        c = self.contract(kind[-2:])
        opt = c.option_json(padded)
        qty = Decimal(c.qty)
        if kind in ("EXP_C1", "ASSIGN_C2", "EXER_C1"):
            type_ = KIND_TYPE[kind]
            units = (
                -qty if kind != "ASSIGN_C2" else qty
            )  # expiring/exercising a long removes it; assignment closes a short
            ref = self.new_ref()
            self.prev_ref = ref
            word = {"EXP_C1": "Expired", "ASSIGN_C2": "Assigned", "EXER_C1": "Exercised"}[kind]
            return self.row(
                opt=opt,
                units=units,
                type_=type_,
                description=f"{word} {c.label()}",
                trade=trade,
                settle=settle,
                ref=ref,
            )
        premium = (Decimal(_ri(rng, 5, 1500)) / 100).quantize(Q2)
        fee = (Decimal("0.65") * qty).quantize(Q2)
        option_type = {
            "BTO_C1": "BUY_TO_OPEN",
            "STC_C1": "SELL_TO_CLOSE",
            "STO_C2": "SELL_TO_OPEN",
            "BTC_C2": "BUY_TO_CLOSE",
        }[kind]
        sell = option_type.startswith("SELL")
        gross = premium * qty * 100
        amount = gross - fee if sell else -(gross + fee)
        ref = self.new_ref()
        self.prev_ref = ref
        return self.row(
            opt=opt,
            price=premium,
            units=-qty if sell else qty,
            amount=amount,
            type_="SELL" if sell else "BUY",
            option_type=option_type,
            description=f"{'Sold' if sell else 'Bought'} {c.qty} {c.label()} @ {_num(premium)}",
            trade=trade,
            settle=settle,
            fee=fee,
            ref=ref,
        )


# ---------------------------------------------------------------------------------------------------------------------
# Malformed rows: damage applied to rendered text, so good and bad rows share one code path.

_AMOUNT = re.compile(r'"amount":[^,]*')
_UNITS = re.compile(r'"units":[^,]*')
_TRADE = re.compile(r'"trade_date":(null|"[^"]*"),')
_SETTLE = re.compile(r'"settlement_date":"[^"]*",')


def _damage(kind: int, row_id: str, body: str) -> str:
    if kind == 0:  # missing id
        return "{" + body + "}"
    if kind == 1:
        body = _AMOUNT.sub('"amount":"abc"', body, count=1)
    elif kind == 2:  # dates missing altogether
        body = _SETTLE.sub("", _TRADE.sub("", body, count=1), count=1)
    elif kind == 3:
        body = _TRADE.sub('"trade_date":"31/02/2024 25:61",', body, count=1)
        body = _SETTLE.sub('"settlement_date":"not-a-date",', body, count=1)
    elif kind == 4:
        body = _UNITS.sub('"units":"1,000.5"', body, count=1)
    return '{"id":"' + row_id + '",' + body + "}"


_DAMAGE = (0, 1, 2, 3, 4)


# ---------------------------------------------------------------------------------------------------------------------
# Pages.

_BLOCK_CACHE: OrderedDict[tuple[int, int, int], list[str]] = OrderedDict()
_BLOCK_CACHE_MAX = 4096
_CACHE_LOCK = Lock()
_TYPES_CACHE: dict[int, bytearray] = {}


def block_seed(view: AccountView, block: int) -> int:
    return mix64(view.key ^ mix64(block + 0x51ED27))


def render_block(view: AccountView, block: int, upto: int) -> list[str]:
    """Bodies of rows block*8 .. min(block*8+8, upto); rows past the end of the history are not rendered."""
    start = block * BLOCK
    n = min(BLOCK, upto - start)
    cache_key = (view.key, block, n)
    with _CACHE_LOCK:
        hit = _BLOCK_CACHE.get(cache_key)
        if hit is not None:
            _BLOCK_CACHE.move_to_end(cache_key)
            return hit
    scen = view.scenario(block)
    stamps: list[tuple[int, int]] = []
    for k in range(n):
        # linked rows share their predecessor's time; only the first row of a block may need to look back
        stamps.append(
            stamps[k - 1] if k and scen.linked[k] else view.stamp(start + k) if k == 0 else view.raw_stamp(start + k)
        )
    r = _BlockRenderer(view.profile, block_seed(view, block), stamps[0][0])
    bodies = [r.render(scen.kinds[k], stamps[k][0], stamps[k][1]) for k in range(n)]
    with _CACHE_LOCK:
        _BLOCK_CACHE[cache_key] = bodies
        if len(_BLOCK_CACHE) > _BLOCK_CACHE_MAX:
            _BLOCK_CACHE.popitem(last=False)
    return bodies


def render_extra(view: AccountView, extra: Extra) -> str:
    r = _BlockRenderer(view.profile, mix64(view.key ^ mix64(extra.serial + 0xBAC4DA7E)), extra.day)
    return r.render(extra.kind, extra.day, extra.secs)


def type_array(view: AccountView) -> bytearray:
    """Type code of every base row, built from scenario patterns (1 byte per row)."""
    with _CACHE_LOCK:
        arr = _TYPES_CACHE.get(view.key)
    if arr is None:
        arr = bytearray()
    if len(arr) < view.count:
        first_block = len(arr) // BLOCK
        last_block = (view.count + BLOCK - 1) // BLOCK
        # build a new array rather than extending in place: other threads may be reading the cached one
        arr = arr[: first_block * BLOCK] + b"".join(view.scenario(b).types for b in range(first_block, last_block))
        with _CACHE_LOCK:
            _TYPES_CACHE[view.key] = arr
    return arr if len(arr) == view.count else arr[: view.count]


def _day_to_stamp(day: int) -> int:
    return day * 86400


@dataclass(frozen=True)
class Query:
    start_day: int | None = None
    end_day: int | None = None
    types: frozenset[str] | None = None
    offset: int = 0
    limit: int = 1000


def page(view: AccountView, q: Query) -> tuple[int, list[str]]:
    """(total matching, JSON texts of the rows on this page), newest first."""
    count = view.count
    lo = 0 if q.start_day is None else view.first_index_after(_day_to_stamp(q.start_day) - 1)
    hi = count if q.end_day is None else view.first_index_after(_day_to_stamp(q.end_day + 1) - 1)
    hi = max(hi, lo)
    mask = None
    codes: set[int] = set()
    if q.types is not None:
        codes = {TYPE_CODES[t] for t in q.types if t in TYPE_CODES}
        table = bytes(1 if b in codes else 0 for b in range(256))
        mask = type_array(view).translate(table)
        base_total = mask.count(1, lo, hi)
    else:
        base_total = hi - lo

    def newer_base(stamp: int) -> int:
        j = max(view.first_index_after(stamp), lo)
        if j >= hi:
            return 0
        return mask.count(1, j, hi) if mask is not None else hi - j

    extras = [
        e
        for e in view.extras
        if (q.start_day is None or e.day >= q.start_day)
        and (q.end_day is None or e.day <= q.end_day)
        and (mask is None or e.type_code in codes)
    ]
    # merged position of each extra: base rows strictly newer than it, plus extras before it
    positions = [newer_base(e.stamp) + k for k, e in enumerate(extras)]
    total = base_total + len(extras)
    start = q.offset
    stop = min(total, q.offset + q.limit)
    if start >= stop:
        return total, []
    extras_before = bisect_right(positions, start - 1)
    base_pos = start - extras_before
    extras_in_page = bisect_right(positions, stop - 1) - extras_before
    need_base = (stop - start) - extras_in_page
    indices = _base_indices(mask, lo, hi, base_pos, need_base)
    out: list[str] = []
    clean = view.malformed.rate <= 0.0  # fast path: no per-row damage check
    rekeys, key = view.rekeys, view.key
    ei = extras_before
    bi = 0
    blocks: dict[int, list[str]] = {}
    for pos in range(start, stop):
        if ei < len(extras) and positions[ei] == pos:
            e = extras[ei]
            ei += 1
            out.append(_finish(view, ~e.serial, view.extra_id(e.serial), render_extra(view, e)))
            continue
        i = indices[bi]
        bi += 1
        b = i // BLOCK
        bodies = blocks.get(b)
        if bodies is None:
            bodies = blocks[b] = render_block(view, b, count)
        if clean:
            out.append(
                '{"id":"'
                + (rekeys.get(i) or uuid_from(key ^ (i * 0x2545F4914F6CDD1D)))
                + '",'
                + bodies[i % BLOCK]
                + "}"
            )
        else:
            out.append(_finish(view, i, view.row_id(i), bodies[i % BLOCK]))
    return total, out


def _finish(view: AccountView, token: int, row_id: str, body: str) -> str:
    damage = view.is_malformed(token)
    if damage < 0:
        return '{"id":"' + row_id + '",' + body + "}"
    return _damage(damage, row_id, body)


def _base_indices(mask: bytearray | None, lo: int, hi: int, skip: int, n: int) -> list[int]:
    """Indices of the `skip`-th .. `skip+n-1`-th matching base rows counted from the newest (hi-1) down."""
    if n <= 0:
        return []
    if mask is None:
        top = hi - 1 - skip
        return list(range(top, max(top - n, lo - 1), -1))
    # find the exclusive upper bound `end` such that exactly `skip` matches lie in [end, hi)
    a, b = lo, hi
    while a < b:
        mid = (a + b + 1) // 2
        if mask.count(1, mid, hi) >= skip + 1:
            a = mid
        else:
            b = mid - 1
    end = a + 1
    out = []
    while len(out) < n:
        j = mask.rfind(1, lo, end)
        if j < 0:
            break
        out.append(j)
        end = j
    return out


def iter_rows(view: AccountView, batch: int = 1000) -> Iterator[dict]:
    """Every row of the account as served (newest first), parsed one page at a time."""
    offset = 0
    while True:
        total, rows = page(view, Query(offset=offset, limit=batch))
        if not rows:
            return
        yield from json.loads("[" + ",".join(rows) + "]")
        offset += len(rows)
        if offset >= total:
            return


def row_tokens(view: AccountView) -> Iterable[int]:
    """Identity tokens of all rows: base indices and ~serial for extras (used to choose rows to re-key)."""
    yield from range(view.count)
    for e in view.extras:
        yield ~e.serial
