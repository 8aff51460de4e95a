"""The one list of SnapTrade activity types and how each maps to our normalized type.

SnapTrade's type list is open-ended: anything unknown is stored as OTHER with its raw type kept.
"""

from __future__ import annotations

# Every type SnapTrade documents (REFERENCE §8), in documentation order, plus OTHER.
DOCUMENTED_TYPES: tuple[str, ...] = (
    "BUY", "SELL",
    "DIVIDEND", "SUBSTITUTE_DIVIDEND", "REI", "STOCK_DIVIDEND", "INTEREST", "RETURN_OF_CAPITAL", "DISTRIBUTION",
    "CONTRIBUTION", "WITHDRAWAL", "FEE", "TAX", "REBATE",
    "OPTIONEXPIRATION", "OPTIONASSIGNMENT", "OPTIONEXERCISE",
    "TRANSFER", "EXTERNAL_ASSET_TRANSFER_IN", "EXTERNAL_ASSET_TRANSFER_OUT",
    "INTERNAL_CASH_TRANSFER_IN", "INTERNAL_CASH_TRANSFER_OUT",
    "INTERNAL_ASSET_TRANSFER_IN", "INTERNAL_ASSET_TRANSFER_OUT",
    "SPLIT", "REVERSE_SPLIT", "SPINOFF", "STOCK_MERGER", "ADJUSTMENT",
)  # fmt: skip
NORMALIZED_TYPES: tuple[str, ...] = DOCUMENTED_TYPES + ("OTHER",)

# Analytics groups cash-flow categories; a type not listed here is "other".
CATEGORY_BY_TYPE: dict[str, str] = {
    "BUY": "trade", "SELL": "trade",
    "DIVIDEND": "dividends", "SUBSTITUTE_DIVIDEND": "dividends", "REI": "dividends",
    "STOCK_DIVIDEND": "dividends", "DISTRIBUTION": "dividends", "RETURN_OF_CAPITAL": "dividends",
    "INTEREST": "interest",
    "CONTRIBUTION": "contributions", "WITHDRAWAL": "withdrawals",
    "FEE": "fees", "TAX": "taxes", "REBATE": "fees",
    "OPTIONEXPIRATION": "options", "OPTIONASSIGNMENT": "options", "OPTIONEXERCISE": "options",
}  # fmt: skip


def types_in(*categories: str) -> tuple[str, ...]:
    """The normalized types of the given categories of CATEGORY_BY_TYPE, sorted."""
    return tuple(sorted(t for t, c in CATEGORY_BY_TYPE.items() if c in categories))


OPTION_ACTIONS = ("BUY_TO_OPEN", "BUY_TO_CLOSE", "SELL_TO_OPEN", "SELL_TO_CLOSE")


def normalize_type(raw: object) -> str:
    """Map SnapTrade's raw type to one of NORMALIZED_TYPES (unknown → OTHER)."""
    if not isinstance(raw, str):
        return "OTHER"
    key = raw.strip().upper()
    return key if key in DOCUMENTED_TYPES else "OTHER"


# How a trader reads each type (tables, filters, charts); the raw SnapTrade type stays in the detail view.
TYPE_LABELS: dict[str, str] = {
    "BUY": "Buy", "SELL": "Sell",
    "DIVIDEND": "Dividend", "SUBSTITUTE_DIVIDEND": "Substitute dividend", "REI": "Dividend reinvestment",
    "STOCK_DIVIDEND": "Stock dividend", "INTEREST": "Interest", "RETURN_OF_CAPITAL": "Return of capital",
    "DISTRIBUTION": "Distribution", "CONTRIBUTION": "Contribution", "WITHDRAWAL": "Withdrawal", "FEE": "Fee",
    "TAX": "Tax", "REBATE": "Rebate",
    "OPTIONEXPIRATION": "Option expiration", "OPTIONASSIGNMENT": "Option assignment",
    "OPTIONEXERCISE": "Option exercise", "TRANSFER": "Transfer",
    "EXTERNAL_ASSET_TRANSFER_IN": "Transfer in from another institution",
    "EXTERNAL_ASSET_TRANSFER_OUT": "Transfer out to another institution",
    "INTERNAL_CASH_TRANSFER_IN": "Cash transfer in between accounts",
    "INTERNAL_CASH_TRANSFER_OUT": "Cash transfer out between accounts",
    "INTERNAL_ASSET_TRANSFER_IN": "Asset transfer in between accounts",
    "INTERNAL_ASSET_TRANSFER_OUT": "Asset transfer out between accounts",
    "SPLIT": "Split", "REVERSE_SPLIT": "Reverse split", "SPINOFF": "Spin-off", "STOCK_MERGER": "Merger",
    "ADJUSTMENT": "Adjustment", "OTHER": "Other",
}  # fmt: skip


def type_label(normalized: str | None) -> str:
    """'Option assignment' for OPTIONASSIGNMENT; an unknown value in sentence case."""
    if not normalized:
        return ""
    return TYPE_LABELS.get(normalized) or normalized.replace("_", " ").capitalize()
