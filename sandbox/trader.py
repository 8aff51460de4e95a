"""The simulated trader: turns one block's story into rows with quantities, prices and cash that add up.

A `BlockTrader` keeps what the block holds as it goes (shares per slot, their average cost, option contracts, the
last contribution and dividend), so a sale sells what was bought, a dividend on a held stock pays for the shares held,
an assignment buys 100 shares per contract at the strike and a split multiplies the shares held. All randomness comes
from one RNG seeded by the block, so the same block always plans the same rows. Rendering to JSON is `render.py`'s job.
"""

from __future__ import annotations

import math
import random
from datetime import date
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from sandbox import trading_days
from sandbox.catalog import Security
from sandbox.hashing import mix64
from sandbox.history import AccountView
from sandbox.market import HUNDRED, Q2, Q4, Q8, REF_DAY, ZERO, Contract, market_price, price_quantum
from sandbox.scenarios import BLOCK, KIND_TYPE, Scenario

# Sizes per profile: the opening deposit and the budget of one trade (in the account's currency).
DEPOSITS = {"us_margin": (20_000, 60_000), "us_ira": (6_000, 20_000), "crypto": (2_000, 15_000),
            "ca_cad": (10_000, 40_000), "ca_usd": (5_000, 20_000), "dateonly": (5_000, 25_000)}  # fmt: skip
TRADE_BUDGETS = {"us_margin": (1_500, 12_000), "us_ira": (800, 6_000), "crypto": (100, 5_000),
                 "ca_cad": (800, 8_000), "ca_usd": (800, 6_000), "dateonly": (500, 6_000)}  # fmt: skip
CONTRIBUTIONS = (250, 500, 1000, 2000, 2500, 5000, 6500)
OPTION_FEE = Decimal("0.65")
STOCK_FEES = ("4.95", "6.95", "9.99", "0.35")


def ri(rng: random.Random, a: int, b: int) -> int:
    """randint without Random.randint's overhead (hot path)."""
    return a + int(rng.random() * (b - a + 1))


def pick(rng: random.Random, seq: list | tuple):  # noqa: ANN201 - any element type
    return seq[int(rng.random() * len(seq))]


def uniform(rng: random.Random, a: float, b: float) -> float:
    return a + (b - a) * rng.random()


class Fill:
    """One planned row: what `render.py` writes out and what `ledger.py` adds up."""

    __slots__ = ("kind", "type", "sec", "contract", "padded", "price", "units", "amount", "fee", "fx",
                 "option_type", "description", "ref", "settles", "dated")  # fmt: skip

    def __init__(self, kind: str, type_: str, description: str, *, sec: Security | None = None,
                 contract: Contract | None = None, padded: bool = False, price: Decimal = ZERO,
                 units: Decimal = ZERO, amount: Decimal | None = ZERO, fee: Decimal = ZERO,
                 fx: Decimal | None = None, option_type: str = "", ref: str | None = None,
                 settles: bool = False) -> None:  # fmt: skip
        self.kind, self.type, self.description = kind, type_, description
        self.sec, self.contract, self.padded = sec, contract, padded
        self.price, self.units, self.amount, self.fee, self.fx = price, units, amount, fee, fx
        self.option_type, self.ref = option_type, ref
        self.settles = settles  # a trade: settles T+1/T+2 (else the settlement date is the trade date)
        self.dated = True  # False: the broker sent no trade date


def block_seed(view: AccountView, block: int) -> int:
    return mix64(view.key ^ mix64(block + 0x51ED27))


def extra_seed(view: AccountView, serial: int) -> int:
    return mix64(view.key ^ mix64(serial + 0xBAC4DA7E))


class BlockTrader:
    """Plans the rows of one block (or of one late row), keeping the block's positions as it goes."""

    def __init__(self, view: AccountView, block: int, seed: int, kinds: tuple[str, ...], day0: int) -> None:
        self.view, self.block, self.kinds, self.day0 = view, block, kinds, day0
        self.p = view.profile
        self.rng = random.Random(seed)
        self.seed = seed
        self.sec = view.securities(block)
        self.held: dict[str, Decimal] = {}  # slot -> units held in this block (negative: short)
        self.cost: dict[str, Decimal] = {}  # slot -> average cost per unit
        self.split_ratio: dict[str, int] = {}  # slot -> a split in this block divides later prices
        self.bought: dict[Security, Decimal] = {}  # long-term units bought or transferred in this block
        self.contracts: dict[str, Contract] = {}
        self.prev: Fill | None = None
        self.prev_slot: str | None = None
        self.last_dividend: Fill | None = None
        self.cash_in = ZERO  # the last deposit or contribution, which the next long-term buy spends
        self.ref_n = 0

    # -- helpers ------------------------------------------------------------------------------------------------------
    def new_ref(self) -> str:
        self.ref_n += 1
        return f"{((self.seed ^ self.ref_n * 0x9E3779B97F4A7C15) >> 12 & 0xFFFFFFFFFFFF):012X}"

    def price(self, slot: str, day: int) -> Decimal:
        sec = self.sec[slot]
        divisor = self.view.price_factor(sec.symbol, self.block) * self.split_ratio.get(slot, 1)
        return market_price(sec, day, self.rng, divisor)

    def size(self, price: Decimal, budget: float, crypto: bool, least: int = 1) -> Decimal:
        if crypto:
            return (Decimal(int(budget * 100)) / (price * 100)).quantize(Q8, ROUND_DOWN) or Q8
        return Decimal(max(least, int(budget / float(price))))

    def budget(self) -> float:
        lo, hi = TRADE_BUDGETS[self.p.key]
        return uniform(self.rng, lo, hi)

    def trade_fee(self) -> Decimal:
        rng = self.rng
        if self.p.crypto:
            return ZERO
        return ZERO if rng.random() < 0.7 else Decimal(pick(rng, STOCK_FEES))

    def plan(self, k: int, day: int) -> Fill:
        """Row k of the block, on `day`."""
        kind = self.kinds[k]
        if kind == "TWIN":
            fill = self.prev
            assert fill is not None and self.prev_slot is not None
            self.held[self.prev_slot] += fill.units
            return fill
        fill = PLANNERS[kind](self, kind, k, day)
        self.prev = fill
        return fill

    # -- round trips --------------------------------------------------------------------------------------------------
    def _trade(self, kind: str, slot: str, units: Decimal, price: Decimal, *, ref: str | None = None,
               fee: Decimal | None = None, note: str = "") -> Fill:  # fmt: skip
        """A BUY or SELL of `units` (signed) of a slot's security, updating the block's position and cost."""
        sec = self.sec[slot]
        sell = units < 0
        fx = None
        shown = price
        if slot == "U":  # a US stock in a CAD account: price and amount converted at the day's rate
            fx = Decimal(f"{1.30 + 0.06 * math.sin((self.day0 - REF_DAY) / 40.0) + self.rng.random() * 0.01:.4f}")
            shown = (price * fx).quantize(Q2, ROUND_HALF_UP)
        fee = self.trade_fee() if fee is None else fee
        gross = (shown * abs(units)).quantize(Q2, ROUND_HALF_UP)
        held = self.held.get(slot, ZERO)
        if not sell and held >= 0:
            self.cost[slot] = (self.cost.get(slot, ZERO) * held + price * units) / (held + units)
        self.held[slot] = held + units
        self.prev_slot = slot
        verb = "Sold" if sell else "Bought"
        return Fill(kind, "SELL" if sell else "BUY", f"{verb} {_num(abs(units))} {sec.symbol} @ {_num(shown)}{note}",
                    sec=sec, price=shown, units=units, amount=gross - fee if sell else -(gross + fee), fee=fee,
                    fx=fx, ref=ref or self.new_ref(), settles=True)  # fmt: skip

    def open_position(self, kind: str, k: int, day: int) -> Fill:
        slot = kind[-1]
        price = self.price(slot, day)
        units = self.size(price, self.budget(), self.p.crypto, least=2)
        return self._trade(kind, slot, units, price)

    def second_fill(self, kind: str, k: int, day: int) -> Fill:
        """Another fill of the same order: same reference and time, a different size, the same or next cent."""
        first = self.prev
        assert first is not None and first.type == "BUY"
        slot = kind[-1]
        part = first.units * Decimal(f"{uniform(self.rng, 0.2, 0.8):.2f}")
        units = part.quantize(Q8, ROUND_DOWN) if self.p.crypto else Decimal(max(1, int(part)))
        if units == first.units:
            units += Q8 if self.p.crypto else 1
        price = first.price + (ZERO if self.rng.random() < 0.5 else price_quantum(first.price))
        return self._trade(kind, slot, units, price, ref=first.ref, fee=ZERO, note=" (partial fill)")

    def add_to_position(self, kind: str, k: int, day: int) -> Fill:
        slot = kind[-1]
        price = self.price(slot, day)
        return self._trade(kind, slot, self.size(price, self.budget() / 2, self.p.crypto), price)

    def open_round_lot(self, kind: str, k: int, day: int) -> Fill:
        slot = kind[-1]
        return self._trade(kind, slot, Decimal(100 * self.contract("C3", day).qty), self.price(slot, day))

    def trim(self, kind: str, k: int, day: int) -> Fill:
        slot = kind[-1]
        held = self.held[slot]
        part = held * Decimal(f"{uniform(self.rng, 0.3, 0.6):.2f}")
        units = part.quantize(Q8, ROUND_DOWN) if self.p.crypto else Decimal(min(int(held) - 1, max(1, int(part))))
        return self._trade(kind, slot, -units, self.price(slot, day))

    def close(self, kind: str, k: int, day: int) -> Fill:
        """Sell what the block holds: at the market (CLOSE), or at a forced gain (WIN) or loss (LOSS)."""
        slot = kind[-1]
        held = self.held[slot]
        assert held > 0, (kind, self.kinds)
        if kind.startswith("WIN"):
            price = self.cost[slot] * Decimal(f"{1 + uniform(self.rng, 0.02, 0.10):.4f}")
        elif kind.startswith("LOSS"):
            price = self.cost[slot] * Decimal(f"{1 - uniform(self.rng, 0.015, 0.08):.4f}")
        else:
            price = self.price(slot, day)
        return self._trade(kind, slot, -held, price.quantize(price_quantum(price), ROUND_HALF_UP))

    def sell_short(self, kind: str, k: int, day: int) -> Fill:
        price = self.price("T", day)
        return self._trade(kind, "T", -self.size(price, self.budget(), False, least=2), price, note=" short")

    def cover(self, kind: str, k: int, day: int) -> Fill:
        held = self.held["T"]
        assert held < 0, (kind, self.kinds)
        return self._trade(kind, "T", -held, self.price("T", day), note=" to cover")

    def sell_held_before(self, kind: str, k: int, day: int) -> Fill:
        """The late-history account sells part of a stock it bought before its history begins."""
        (sec, units), *_ = self.view.held_before_history.items()
        self.sec["X"] = sec
        sold = Decimal(max(1, int(units * uniform(self.rng, 0.25, 0.6))))
        return self._trade(kind, "X", -sold, self.price("X", day))

    def split(self, kind: str, k: int, day: int) -> Fill:
        slot = kind[-1]
        sec, held = self.sec[slot], self.held[slot]
        ratio = self.view.split.ratio if self.view.split else 2
        self.held[slot] = held * ratio
        self.cost[slot] = self.cost[slot] / ratio
        self.split_ratio[slot] = ratio
        self.prev_slot = slot
        return Fill(kind, "SPLIT", f"{ratio}-for-1 stock split {sec.symbol}", sec=sec, units=held * (ratio - 1))

    def position_dividend(self, kind: str, k: int, day: int) -> Fill:
        """A dividend on the shares the block holds (a US one in a CAD account is converted)."""
        slot = kind[-1]
        sec = self.sec[slot]
        per_share = sec.dividend or Decimal("0.10")
        amount = (per_share * self.held[slot]).quantize(Q2, ROUND_HALF_UP) or Q2
        fx = None
        if slot == "U":
            fx = Decimal(f"{1.31 + self.rng.random() * 0.07:.4f}")
            amount = (amount * fx).quantize(Q2, ROUND_HALF_UP)
        return self._dividend(kind, sec, amount, fx)

    # -- long-term holdings -------------------------------------------------------------------------------------------
    def buy_to_hold(self, kind: str, k: int, day: int) -> Fill:
        """Invest what the last contribution left (a third of an opening deposit, the rest being trading money; a
        small sum when nothing is left), in whole shares or fractional fund units."""
        slot = kind[-1]
        sec = self.sec[slot]
        price = market_price(sec, day, self.rng)
        left = float(self.cash_in)
        if left >= 10_000:
            budget, left = left * uniform(self.rng, 0.3, 0.45), 0.0
        elif left >= 50:
            budget = left * uniform(self.rng, 0.45, 0.95)
            left -= budget
        else:
            budget = uniform(self.rng, 100, 600)
        self.cash_in = Decimal(int(left))
        if slot == "F":
            units = (Decimal(f"{budget:.2f}") / price).quantize(Q4, ROUND_DOWN) or Q4
        else:
            units = self.size(price, budget, self.p.crypto)
        self.bought[sec] = self.bought.get(sec, ZERO) + units
        fee = self.trade_fee()
        gross = (price * units).quantize(Q2, ROUND_HALF_UP)
        self.prev_slot = slot
        return Fill(kind, "BUY", f"Bought {_num(units)} {sec.symbol} @ {_num(price)}", sec=sec, price=price,
                    units=units, amount=-(gross + fee), fee=fee, ref=self.new_ref(), settles=True)  # fmt: skip

    def holding_dividend(self, kind: str, k: int, day: int) -> Fill:
        sec = self.sec[kind[-1]]
        shares = self.bought.get(sec) or Decimal(ri(self.rng, 5, 400))
        amount = ((sec.dividend or Decimal("0.10")) * shares).quantize(Q2, ROUND_HALF_UP) or Q2
        return self._dividend(kind, sec, amount, None)

    def _dividend(self, kind: str, sec: Security, amount: Decimal, fx: Decimal | None) -> Fill:
        fill = Fill(kind, "DIVIDEND", f"{sec.description} dividend", sec=sec, amount=amount, fx=fx, ref=self.new_ref())
        self.last_dividend = fill
        return fill

    def withholding(self, kind: str, k: int, day: int) -> Fill:
        div = self.last_dividend
        assert div is not None and div.amount is not None
        tax = (div.amount * Decimal("0.15")).quantize(Q2, ROUND_HALF_UP) or Q2
        return Fill(kind, "TAX", "Non-resident tax withheld", sec=div.sec, amount=-tax, ref=div.ref)

    def reinvest(self, kind: str, k: int, day: int) -> Fill:
        div = self.last_dividend
        assert div is not None and div.sec is not None and div.amount is not None
        sec = div.sec
        price = market_price(sec, self.day0, self.rng)
        units = (div.amount / price).quantize(Q4, ROUND_DOWN) or Q4
        self.bought[sec] = self.bought.get(sec, ZERO) + units
        return Fill(kind, "REI", f"Dividend reinvestment {sec.symbol}", sec=sec, price=price, units=units,
                    amount=-div.amount, ref=div.ref)  # fmt: skip

    def transfer(self, kind: str, k: int, day: int) -> Fill:
        """Shares moved in from another institution (at market value, no cash), or part of them moved out again."""
        sec = self.sec["H"]
        price = market_price(sec, day, self.rng)
        if kind == "XFER_IN_H":
            units = self.size(price, uniform(self.rng, 500, 8000), self.p.crypto)
            self.bought[sec] = self.bought.get(sec, ZERO) + units
            return Fill(kind, KIND_TYPE[kind], f"Transfer in {sec.symbol}", sec=sec, price=price, units=units)
        moved_in = self.bought[sec]
        part = moved_in * Decimal(f"{uniform(self.rng, 0.3, 0.7):.2f}")
        units = part.quantize(Q8, ROUND_DOWN) if self.p.crypto else Decimal(max(1, int(part)))
        self.bought[sec] = moved_in - units
        return Fill(kind, KIND_TYPE[kind], f"Transfer out {sec.symbol}", sec=sec, price=price, units=-units)

    def units_reward(self, kind: str, k: int, day: int) -> Fill:
        """A stock dividend paid in shares, or a staking reward paid in coins: units with no cash."""
        sec = self.sec[kind[-1]]
        if kind == "STOCK_DIV_H":
            return Fill(
                kind, KIND_TYPE[kind], f"Stock dividend {sec.symbol}", sec=sec, units=Decimal(ri(self.rng, 1, 9))
            )
        price = market_price(sec, day, self.rng)
        units = self.size(price, uniform(self.rng, 1, 40), True)
        return Fill(kind, KIND_TYPE[kind], f"Staking reward {sec.symbol}", sec=sec, price=price, units=units)

    # -- options ------------------------------------------------------------------------------------------------------
    def contract(self, name: str, day: int) -> Contract:
        c = self.contracts.get(name)
        if c is None:
            c = self.contracts[name] = self._new_contract(name, day)
        return c

    def _new_contract(self, name: str, day: int) -> Contract:
        """A contract on the block's stock whose strike fits its fate: in the money at expiry when the story has it
        assigned or exercised, out of the money when it expires, near the money when it is closed by a trade."""
        rng = self.rng
        under = self.sec["T"]
        divisor = self.view.price_factor(under.symbol, self.block)
        expiry = self._expiry(name, day)
        spot = market_price(under, expiry, None, divisor)  # the price path at expiry, which the story foresees
        step = Decimal(5) if spot >= 100 else Decimal("2.5") if spot >= 25 else Decimal(1)
        fates = {kind[:3] for kind in self.kinds if kind.endswith(name)}
        above = name[0] == "P" if fates & {"ASS", "EXE"} else name[0] == "C" if "EXP" in fates else None
        if above is None:
            strike = (spot / step).quantize(Decimal(1)) * step + step * ri(rng, -1, 1)
        elif above:
            strike = (spot / step).to_integral_value(ROUND_CEILING) * step + step * ri(rng, 0, 1)
        else:
            strike = (spot / step).to_integral_value(ROUND_FLOOR) * step - step * ri(rng, 0, 1)
        qty = 1 if self.p.key == "us_ira" or rng.random() < 0.7 else 2
        return Contract(under, name[0], max(step, strike), expiry, qty)

    def _expiry(self, name: str, day: int) -> int:
        """On the day the story's expiration, assignment or exercise row is expected; 2-6 weeks past a close."""
        market = self.p.market
        start = self.block * BLOCK
        events = [k for k, kind in enumerate(self.kinds) if kind.endswith(name) and kind[:3] in ("EXP", "ASS", "EXE")]
        if events:
            expected = self.view.expected_day(start + events[0])
            return max(day, trading_days.last_open_on_or_before(market, expected))
        closes = [k for k, kind in enumerate(self.kinds) if kind.endswith(name)]
        friday = self.view.expected_day(start + closes[-1]) + ri(self.rng, 14, 42)
        friday += (4 - date.fromordinal(friday).weekday()) % 7
        return trading_days.last_open_on_or_before(market, friday)

    def option_trade(self, kind: str, k: int, day: int) -> Fill:
        name = kind[-2:]
        c = self.contract(name, day)
        option_type = {"BTO": "BUY_TO_OPEN", "STC": "SELL_TO_CLOSE", "STO": "SELL_TO_OPEN", "BTC": "BUY_TO_CLOSE"}[
            kind[:3]
        ]
        if kind[:3] in ("BTO", "STO"):
            spot = c.strike  # premiums scale with the underlying's price
            premium = max(
                Decimal("0.05"), (spot * Decimal(f"{uniform(self.rng, 0.01, 0.05):.4f}") / 5).quantize(Q2) * 5
            )
            self.cost[name] = premium
        else:
            change = uniform(self.rng, 0.2, 1.6) if kind[:3] == "BTC" else 1 + uniform(self.rng, -0.7, 1.2)
            premium = max(Q2, (self.cost[name] * Decimal(f"{change:.4f}")).quantize(Q2))
        sell = option_type.startswith("SELL")
        qty = Decimal(c.qty)
        fee = (OPTION_FEE * qty).quantize(Q2)
        gross = premium * qty * HUNDRED
        padded = self.rng.random() < 0.5  # both OCC spellings occur for the same contract
        return Fill(kind, "SELL" if sell else "BUY", f"{'Sold' if sell else 'Bought'} {c.qty} {c.label()} @ {_num(premium)}",
                    contract=c, padded=padded, price=premium, units=-qty if sell else qty,
                    amount=gross - fee if sell else -(gross + fee), fee=fee, option_type=option_type,
                    ref=self.new_ref(), settles=True)  # fmt: skip

    def option_event(self, kind: str, k: int, day: int) -> Fill:
        """Expiration, assignment or exercise: closes the contract at no cash; a stock leg may follow."""
        c = self.contract(kind[-2:], day)
        long_contract = kind[-2:] == "C1"
        units = Decimal(-c.qty if long_contract else c.qty)
        word = {"EXP": "Expired", "ASS": "Assigned", "EXE": "Exercised"}[kind[:3]]
        return Fill(kind, KIND_TYPE[kind], f"{word} {c.label()}", contract=c, padded=self.rng.random() < 0.5,
                    units=units, ref=self.new_ref(), settles=True)  # fmt: skip

    def stock_leg(self, kind: str, k: int, day: int) -> Fill:
        """The broker's separate stock BUY or SELL of an assignment or exercise, at the strike."""
        c = self.contracts[{"EXER_STOCK": "C1", "ASSIGN_BUY": "P2", "ASSIGN_SELL": "C3"}[kind]]
        event = self.prev
        assert event is not None
        units = Decimal(c.qty * 100)
        why = "exercise" if kind == "EXER_STOCK" else "assignment"
        return self._trade(kind, "T", -units if kind == "ASSIGN_SELL" else units, c.strike, ref=event.ref,
                           fee=ZERO, note=f" ({why})")  # fmt: skip

    # -- cash ---------------------------------------------------------------------------------------------------------
    def deposit(self, kind: str, k: int, day: int) -> Fill:
        if kind == "DEPOSIT":
            lo, hi = DEPOSITS[self.p.key]
            amount = Decimal(ri(self.rng, lo // 500, hi // 500) * 500)
            text = "Initial deposit"
        else:
            amount, text = Decimal(pick(self.rng, CONTRIBUTIONS)), "Deposit"
        self.cash_in = amount
        return Fill(kind, "CONTRIBUTION", text, amount=amount, ref=self.new_ref())

    def commission(self, kind: str, k: int, day: int) -> Fill:
        prev = self.prev
        fee = Decimal(pick(self.rng, ["0.99", "4.95", "6.95", "1.25"]))
        return Fill(kind, "FEE", "Commission", sec=prev.sec if prev else None, amount=-fee, fee=fee,
                    ref=prev.ref if prev else None)  # fmt: skip

    def cash(self, kind: str, k: int, day: int) -> Fill:
        rng = self.rng
        amount, text = CASH_ROWS[kind](rng)
        fill = Fill(kind, KIND_TYPE[kind], text, amount=amount, ref=self.new_ref() if kind == "WITHDRAW" else None)
        fill.dated = kind != "INTEREST_NODATE"
        return fill

    def return_of_capital(self, kind: str, k: int, day: int) -> Fill:
        sec = self.sec["H"]
        amount = (Decimal(ri(self.rng, 100, 9000)) / 100).quantize(Q2)
        return Fill(kind, "RETURN_OF_CAPITAL", f"{sec.symbol} return of capital", sec=sec, amount=amount)


def _num(d: Decimal) -> str:
    if not d:
        return "0"
    return format(d, "f")


def _cents(rng: random.Random, lo: int, hi: int) -> Decimal:
    return (Decimal(ri(rng, lo, hi)) / 100).quantize(Q2)


CASH_ROWS = {
    "WITHDRAW": lambda rng: (-Decimal(pick(rng, [50, 200, 750, 1500])), "Withdrawal"),
    "FEE": lambda rng: (-Decimal(pick(rng, ["2.50", "10.00", "25.00", "0.07"])), "Account fee"),
    "INTEREST": lambda rng: (_cents(rng, 1, 4000), "Interest on credit balance"),
    "INTEREST_NODATE": lambda rng: (_cents(rng, 1, 4000), "Interest on credit balance"),
    "TAX": lambda rng: (-_cents(rng, 5, 9000), "Foreign tax paid"),
    "ICT_OUT": lambda rng: (-Decimal(pick(rng, [100, 300, 1000])), "Transfer to savings"),
    "ICT_IN": lambda rng: (Decimal(pick(rng, [100, 300, 1000])), "Transfer from savings"),
    "TRANSFER": lambda rng: (Decimal(pick(rng, [-500, -120, 80, 400, 2000])), "Cash transfer"),
    "JOURNAL": lambda rng: (_cents(rng, -5000, 5000) or Q2, "Journal entry"),
    "MISC_CREDIT": lambda rng: (_cents(rng, 1, 2500), "Miscellaneous credit"),
}

_B = BlockTrader
PLANNERS = {
    **dict.fromkeys(("OPEN_T", "OPEN_U"), _B.open_position),
    "FILL_T": _B.second_fill, "ADD_T": _B.add_to_position, "OPEN100_T": _B.open_round_lot, "TRIM_T": _B.trim,
    **dict.fromkeys(("CLOSE_T", "WIN_T", "LOSS_T", "CLOSE_U", "WIN_U"), _B.close),
    "SHORT_T": _B.sell_short, "COVER_T": _B.cover, "SELLPRE_X": _B.sell_held_before, "SPLIT_T": _B.split,
    **dict.fromkeys(("DIV_T", "DIV_U"), _B.position_dividend),
    **dict.fromkeys(("BUY_H", "BUY_F"), _B.buy_to_hold),
    **dict.fromkeys(("DIV_H", "DIV_F"), _B.holding_dividend),
    "WHT": _B.withholding, "REI": _B.reinvest, "XFER_IN_H": _B.transfer, "XFER_OUT_H": _B.transfer,
    **dict.fromkeys(("STOCK_DIV_H", "STAKE_S"), _B.units_reward),
    **dict.fromkeys(("BTO_C1", "STC_C1", "STO_P2", "BTC_P2", "STO_C3"), _B.option_trade),
    **dict.fromkeys(("EXP_C1", "EXER_C1", "EXP_P2", "ASSIGN_P2", "ASSIGN_C3"), _B.option_event),
    **dict.fromkeys(("EXER_STOCK", "ASSIGN_BUY", "ASSIGN_SELL"), _B.stock_leg),
    **dict.fromkeys(("DEPOSIT", "CONTRIB"), _B.deposit),
    "COMMISSION": _B.commission, "ROC_H": _B.return_of_capital,
    **dict.fromkeys(CASH_ROWS, _B.cash),
}  # fmt: skip
assert set(PLANNERS) | {"TWIN"} == set(KIND_TYPE), set(KIND_TYPE) ^ set(PLANNERS)


def plan_block(
    view: AccountView, block: int, stamps: list[tuple[int, int]], scenario: Scenario | None = None
) -> list[Fill]:
    """The first len(stamps) rows of a block (rows past the end of the history are not planned)."""
    kinds = (scenario or view.scenario(block)).kinds
    trader = BlockTrader(view, block, block_seed(view, block), kinds, stamps[0][0])
    plan = trader.plan
    return [plan(k, day) for k, (day, _) in enumerate(stamps)]


def plan_extra(view: AccountView, serial: int, kind: str, day: int) -> Fill:
    """A backdated row: a story of one row, on its own seed."""
    return BlockTrader(view, -1 - serial, extra_seed(view, serial), (kind,), day).plan(0, day)
