"""What each account's trader does: the stories its history is made of, and which securities it trades.

A history is a sequence of blocks of eight rows. Each block follows one story: a list of row kinds such as "open a
position, add to it, take part off, close it" or "sell a put, get assigned, sell the shares". A trading position is
opened and closed inside its block, so a block never sells what it did not buy and the history stays
position-consistent however it is paged. Long-term holdings (ETFs, funds, BTC/ETH) are only ever bought, reinvested
or transferred in, so they grow. The first blocks of an account follow a fixed tour that shows every feature once;
the rest are drawn by hashing the block number with the weights below.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox import catalog, trading_days
from sandbox.catalog import Security
from sandbox.hashing import mix64

BLOCK = 8
TOUR_SPACING = 5  # tour story t is block t * TOUR_SPACING: spread out, and inside a default 300-row history

# How a row's time relates to the row before it (a kind ends with "+" or "~" in the story tables).
PLAIN, SAME_TIME, SAME_DAY = 0, 1, 2  # own time on the timeline / the previous row's time / later on its day
LINK_MARK = {"+": SAME_TIME, "~": SAME_DAY}

# Slots, by the kind's suffix: T traded in round trips, H held for the long run, U US stock traded in CAD with an FX
# rate, S staked coin, F mutual fund, X the stock the late-history account held before its history begins.
KIND_TYPE: dict[str, str] = {
    # cash
    "DEPOSIT": "CONTRIBUTION", "CONTRIB": "CONTRIBUTION", "WITHDRAW": "WITHDRAWAL", "FEE": "FEE",
    "COMMISSION": "FEE", "INTEREST": "INTEREST", "INTEREST_NODATE": "INTEREST", "TAX": "TAX",
    "ICT_OUT": "INTERNAL_CASH_TRANSFER_OUT", "ICT_IN": "INTERNAL_CASH_TRANSFER_IN", "TRANSFER": "TRANSFER",
    "JOURNAL": "JOURNAL", "MISC_CREDIT": "MISC_CREDIT",
    # long-term holdings
    "BUY_H": "BUY", "BUY_F": "BUY", "DIV_H": "DIVIDEND", "DIV_F": "DIVIDEND", "WHT": "TAX", "REI": "REI",
    "XFER_IN_H": "EXTERNAL_ASSET_TRANSFER_IN", "XFER_OUT_H": "EXTERNAL_ASSET_TRANSFER_OUT",
    "STOCK_DIV_H": "STOCK_DIVIDEND", "ROC_H": "RETURN_OF_CAPITAL", "STAKE_S": "STAKING_REWARD",
    # round trips
    "OPEN_T": "BUY", "FILL_T": "BUY", "ADD_T": "BUY", "OPEN100_T": "BUY", "TRIM_T": "SELL", "CLOSE_T": "SELL",
    "WIN_T": "SELL", "LOSS_T": "SELL", "SHORT_T": "SELL", "COVER_T": "BUY", "SPLIT_T": "SPLIT",
    "DIV_T": "DIVIDEND", "OPEN_U": "BUY", "CLOSE_U": "SELL", "WIN_U": "SELL", "DIV_U": "DIVIDEND",
    "SELLPRE_X": "SELL",
    # options on the block's T: C1 a long call, P2 a short put, C3 a covered call
    "BTO_C1": "BUY", "STC_C1": "SELL", "EXP_C1": "OPTIONEXPIRATION", "EXER_C1": "OPTIONEXERCISE",
    "EXER_STOCK": "BUY", "STO_P2": "SELL", "BTC_P2": "BUY", "EXP_P2": "OPTIONEXPIRATION",
    "ASSIGN_P2": "OPTIONASSIGNMENT", "ASSIGN_BUY": "BUY", "STO_C3": "SELL", "ASSIGN_C3": "OPTIONASSIGNMENT",
    "ASSIGN_SELL": "SELL",
    # a second fill identical to the row before it (same price, size, time and order reference)
    "TWIN": "",
}  # fmt: skip

# Stories shared by several profiles.
_MISC_US = ["CONTRIB", "BUY_H", "STOCK_DIV_H", "ICT_OUT", "TRANSFER", "INTEREST_NODATE", "ROC_H", "ICT_IN"]
_TWIN = ["OPEN_T", "TWIN+", "DIV_H", "WHT+", "CLOSE_T", "JOURNAL", "MISC_CREDIT", "CONTRIB"]
_COVERED_CALL = ["OPEN100_T", "COMMISSION+", "STO_C3", "DIV_T", "ASSIGN_C3", "ASSIGN_SELL+", "CONTRIB", "BUY_H"]
_EXERCISE = ["BTO_C1", "INTEREST", "EXER_C1", "EXER_STOCK+", "DIV_H", "REI+", "CLOSE_T", "FEE"]
_OPTIONS_CLOSED = ["BTO_C1", "STO_P2", "DIV_H", "STC_C1", "BTC_P2", "CONTRIB", "BUY_H", "TAX"]
_OPTIONS_TO_EXPIRY = ["BTO_C1", "STO_P2", "INTEREST", "EXP_C1", "ASSIGN_P2", "ASSIGN_BUY+", "CLOSE_T", "WITHDRAW"]

# (weight, story). Twin fills (an identical second fill of one order) are rare on purpose: about 1 block in 40.
STORIES: dict[str, list[tuple[int, list[str]]]] = {
    "us_margin": [
        (10, ["OPEN_T", "COMMISSION+", "DIV_H", "ADD_T", "INTEREST", "TRIM_T", "CLOSE_T", "FEE"]),
        (8, ["CONTRIB", "BUY_H", "COMMISSION+", "DIV_H", "REI+", "OPEN_T", "FILL_T+", "CLOSE_T"]),
        (6, ["OPEN_T", "CLOSE_T~", "DIV_H", "WHT+", "OPEN_T", "TRIM_T~", "CLOSE_T~", "INTEREST"]),
        (6, _OPTIONS_CLOSED),
        (4, _OPTIONS_TO_EXPIRY),
        (2, ["STO_P2", "CONTRIB", "BUY_H", "EXP_P2", "DIV_H", "REI+", "INTEREST", "FEE"]),
        (2, _COVERED_CALL),
        (2, _EXERCISE),
        (2, ["SHORT_T", "COMMISSION+", "DIV_H", "COVER_T", "CONTRIB", "BUY_H", "JOURNAL", "MISC_CREDIT"]),
        (2, _MISC_US),
        (1, _TWIN),
    ],
    "us_ira": [
        (20, ["CONTRIB", "BUY_H", "COMMISSION+", "DIV_H", "REI+", "INTEREST", "OPEN_T", "CLOSE_T"]),
        (16, ["OPEN_T", "FILL_T+", "DIV_H", "ADD_T", "INTEREST", "TRIM_T", "CLOSE_T", "FEE"]),
        (4, ["BTO_C1", "CONTRIB", "BUY_H", "STC_C1", "DIV_H", "WHT+", "INTEREST", "TAX"]),
        (4, _COVERED_CALL),
        (4, _MISC_US),
        (1, _TWIN),
    ],
    "crypto": [
        (20, ["CONTRIB", "BUY_H", "COMMISSION+", "OPEN_T", "STAKE_S", "CLOSE_T", "CONTRIB", "BUY_H"]),
        (15, ["OPEN_T", "FILL_T+", "CLOSE_T~", "STAKE_S", "CONTRIB", "BUY_H", "INTEREST", "WITHDRAW"]),
        (5, ["XFER_IN_H", "OPEN_T", "TRIM_T", "STAKE_S", "XFER_OUT_H", "CLOSE_T", "CONTRIB", "BUY_H"]),
        (1, ["OPEN_T", "TWIN+", "STAKE_S", "CLOSE_T", "CONTRIB", "BUY_H", "INTEREST", "FEE"]),
    ],
    "ca_cad": [
        (16, ["CONTRIB", "BUY_H", "OPEN_U", "COMMISSION+", "DIV_U", "CLOSE_U", "DIV_H", "INTEREST"]),
        (12, ["OPEN_T", "FILL_T+", "DIV_T", "TRIM_T", "CLOSE_T", "DIV_H", "REI+", "FEE"]),
        (4, ["CONTRIB", "BUY_H", "STOCK_DIV_H", "ICT_IN", "TRANSFER", "INTEREST_NODATE", "ROC_H", "MISC_CREDIT"]),
        (4, ["OPEN_T", "CLOSE_T~", "JOURNAL", "TAX", "CONTRIB", "BUY_H", "WITHDRAW", "INTEREST"]),
        (1, _TWIN),
    ],
    "ca_usd": [
        (20, ["CONTRIB", "BUY_H", "COMMISSION+", "DIV_H", "WHT+", "OPEN_T", "CLOSE_T", "INTEREST"]),
        (15, ["OPEN_T", "FILL_T+", "DIV_T", "WHT+", "ADD_T", "TRIM_T", "CLOSE_T", "FEE"]),
        (5, _MISC_US),
        (1, _TWIN),
    ],
    "dateonly": [
        (24, ["CONTRIB", "BUY_H", "BUY_F", "DIV_F", "REI+", "OPEN_T", "CLOSE_T", "FEE"]),
        (12, ["OPEN_T", "FILL_T+", "DIV_H", "WHT+", "TRIM_T", "CLOSE_T", "CONTRIB", "MISC_CREDIT"]),
        (6, ["CONTRIB", "BUY_H", "STOCK_DIV_H", "ICT_OUT", "TRANSFER", "INTEREST_NODATE", "ROC_H", "JOURNAL"]),
        (1, _TWIN),
    ],
}

# The first stories of every account, one every TOUR_SPACING blocks: together they show each feature the journal
# handles (wins and losses, partial fills, same-day trades, every option event, the split, a transfer in).
TOURS: dict[str, list[list[str]]] = {
    "us_margin": [
        ["DEPOSIT", "BUY_H", "COMMISSION+", "OPEN_T", "FILL_T+", "DIV_H", "INTEREST", "WIN_T"],
        ["OPEN_T", "LOSS_T~", "CONTRIB", "SHORT_T", "COMMISSION+", "COVER_T~", "BUY_H", "FEE"],
        ["BTO_C1", "STO_P2", "DIV_H", "REI+", "STC_C1", "BTC_P2", "CONTRIB", "BUY_H"],
        _OPTIONS_TO_EXPIRY,
        _COVERED_CALL,
        _EXERCISE,
        ["OPEN_T", "ADD_T", "SPLIT_T", "TRIM_T", "XFER_IN_H", "INTEREST_NODATE", "CLOSE_T", "JOURNAL"],
    ],
    "us_ira": [
        ["SELLPRE_X", "CONTRIB", "BUY_H", "COMMISSION+", "DIV_H", "REI+", "INTEREST", "FEE"],
        ["OPEN_T", "FILL_T+", "DIV_T", "TRIM_T", "LOSS_T", "CONTRIB", "BUY_H", "INTEREST"],
        ["BTO_C1", "CONTRIB", "BUY_H", "STC_C1", "DIV_H", "XFER_IN_H", "INTEREST", "TAX"],
    ],
    "crypto": [
        ["DEPOSIT", "BUY_H", "COMMISSION+", "OPEN_T", "FILL_T+", "STAKE_S", "WIN_T", "FEE"],
        ["XFER_IN_H", "OPEN_T", "LOSS_T~", "STAKE_S", "XFER_OUT_H", "CONTRIB", "BUY_H", "INTEREST"],
    ],
    "ca_cad": [
        ["DEPOSIT", "BUY_H", "COMMISSION+", "OPEN_U", "DIV_U", "WIN_U", "OPEN_T", "LOSS_T"],
        ["OPEN_T", "FILL_T+", "DIV_T", "CLOSE_T~", "XFER_IN_H", "INTEREST_NODATE", "CONTRIB", "BUY_H"],
    ],
    "ca_usd": [
        ["DEPOSIT", "BUY_H", "COMMISSION+", "OPEN_T", "DIV_T", "WHT+", "WIN_T", "INTEREST"],
        ["OPEN_T", "FILL_T+", "LOSS_T~", "CONTRIB", "BUY_H", "DIV_H", "WHT+", "FEE"],
    ],
    "dateonly": [
        ["DEPOSIT", "BUY_H", "BUY_F", "OPEN_T", "FILL_T+", "DIV_F", "REI+", "WIN_T"],
        ["OPEN_T", "LOSS_T~", "CONTRIB", "BUY_F", "DIV_H", "WHT+", "FEE", "INTEREST"],
    ],
}

# Kinds a backdated (late-arriving) row may have: none of them sells, so a late row cannot break the positions.
LATE_KINDS: dict[str, list[str]] = {
    "us_margin": ["BUY_H", "DIV_H", "FEE", "INTEREST", "CONTRIB"],
    "us_ira": ["BUY_H", "DIV_H", "INTEREST", "CONTRIB"],
    "crypto": ["BUY_H", "STAKE_S", "FEE", "CONTRIB"],
    "ca_cad": ["BUY_H", "DIV_H", "INTEREST", "CONTRIB"],
    "ca_usd": ["BUY_H", "DIV_H", "INTEREST", "CONTRIB"],
    "dateonly": ["BUY_H", "DIV_F", "FEE", "CONTRIB"],
}

UNIVERSES: dict[str, dict[str, list[Security]]] = {
    "us_margin": {"T": catalog.US_STOCKS, "H": catalog.US_ETFS},
    "us_ira": {"T": catalog.US_STOCKS, "H": catalog.US_ETFS},
    "crypto": {"T": catalog.CRYPTO[2:], "H": catalog.CRYPTO[:2], "S": catalog.CRYPTO[1:2]},
    "ca_cad": {"T": catalog.CA_STOCKS, "H": catalog.CA_ETFS, "U": catalog.US_STOCKS},
    "ca_usd": {"T": catalog.US_STOCKS, "H": catalog.US_ETFS},
    "dateonly": {"T": catalog.US_STOCKS, "H": catalog.US_ETFS, "F": catalog.US_FUNDS},
}


def market(profile: str) -> str:
    """Whose calendar an account kind trades on (crypto accounts trade every day and use it only to settle)."""
    return trading_days.CA if profile.startswith("ca_") else trading_days.US


# The one account kind whose imported history starts after its first purchases (moved in from another broker).
LATE_HISTORY_PROFILE = "us_ira"

TYPE_CODES: dict[str, int] = {}


def type_code(type_name: str) -> int:
    """Small integer per activity type, used by the per-account type array that makes `type=` filters cheap."""
    code = TYPE_CODES.get(type_name)
    if code is None:
        code = TYPE_CODES[type_name] = len(TYPE_CODES) + 1
    return code


@dataclass(frozen=True)
class Scenario:
    """One compiled story: its kinds, how each row's time links to the previous row, and each row's type code."""

    kinds: tuple[str, ...]
    links: tuple[int, ...]
    types: bytes


def compile_story(kinds: list[str]) -> Scenario:
    assert len(kinds) == BLOCK and kinds[0][-1] not in LINK_MARK, kinds  # a block's first row has its own time
    bare = tuple(k.rstrip("+~") for k in kinds)
    links = tuple(LINK_MARK.get(k[-1], PLAIN) for k in kinds)
    # a twin repeats the row before it, so it has that row's type
    types = [KIND_TYPE[bare[i - 1]] if k == "TWIN" else KIND_TYPE[k] for i, k in enumerate(bare)]
    return Scenario(bare, links, bytes(type_code(t) for t in types))


@dataclass(frozen=True)
class StoryBook:
    """A profile's compiled tour and weighted stories."""

    tour: tuple[Scenario, ...]
    cumulative: tuple[int, ...]
    stories: tuple[Scenario, ...]

    def pick(self, key: int, block: int) -> Scenario:
        if block % TOUR_SPACING == 0 and block // TOUR_SPACING < len(self.tour):
            return self.tour[block // TOUR_SPACING]
        cumulative = self.cumulative
        pick = mix64(key ^ mix64(block * 2 + 1)) % cumulative[-1]
        lo, hi = 0, len(cumulative) - 1
        while lo < hi:  # the first story whose cumulative weight exceeds the pick
            mid = (lo + hi) // 2
            if cumulative[mid] > pick:
                hi = mid
            else:
                lo = mid + 1
        return self.stories[lo]


def _book(profile: str) -> StoryBook:
    cumulative, total = [], 0
    for weight, _ in STORIES[profile]:
        total += weight
        cumulative.append(total)
    return StoryBook(
        tuple(compile_story(k) for k in TOURS[profile]),
        tuple(cumulative),
        tuple(compile_story(k) for _, k in STORIES[profile]),
    )


BOOKS: dict[str, StoryBook] = {profile: _book(profile) for profile in STORIES}
for _kind in ("BUY", "SELL", "DIVIDEND"):
    type_code(_kind)
