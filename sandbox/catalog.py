"""Reference data the sandbox serves: its four sandbox brokerages, currencies, exchanges and securities.

Every object here has a stable uuid5 id so symbol and brokerage ids never depend on the seed, like SnapTrade's.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

_NS = uuid.UUID("5b0c6f43-6f1d-4c55-9b2e-1d3c5e0a7a11")


def stable_id(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


CURRENCIES: dict[str, dict[str, str]] = {
    code: {"id": stable_id("currency", code), "code": code, "name": name}
    for code, name in [("USD", "US Dollar"), ("CAD", "Canadian Dollar")]
}

EXCHANGES: dict[str, dict[str, object]] = {
    code: {
        "id": stable_id("exchange", code),
        "code": code,
        "mic_code": mic,
        "name": name,
        "timezone": tz,
        "start_time": start,
        "close_time": close,
        "suffix": suffix,
    }
    for code, mic, name, tz, start, close, suffix in [
        ("NASDAQ", "XNAS", "NASDAQ", "America/New_York", "09:30:00", "16:00:00", None),
        ("NYSE", "XNYS", "New York Stock Exchange", "America/New_York", "09:30:00", "16:00:00", None),
        ("ARCA", "ARCX", "NYSE ARCA", "America/New_York", "09:30:00", "16:00:00", None),
        ("TSX", "XTSE", "Toronto Stock Exchange", "America/Toronto", "09:30:00", "16:00:00", ".TO"),
        ("CRYPTO", None, "Cryptocurrency", "UTC", "00:00:00", "23:59:59", None),
        ("OTC", None, "Mutual Funds", "America/New_York", "09:30:00", "16:00:00", None),
    ]
}

SECURITY_TYPES: dict[str, dict[str, object]] = {
    code: {"id": stable_id("type", code), "code": code, "description": desc, "is_supported": True}
    for code, desc in [
        ("cs", "Common Stock"),
        ("et", "ETF"),
        ("crypto", "Cryptocurrency"),
        ("oef", "Open Ended Fund"),
        ("ad", "American Depositary Receipt"),
    ]
}


@dataclass(frozen=True)
class Security:
    """One tradable instrument and the pre-rendered JSON of its SnapTrade Symbol object."""

    symbol: str
    raw_symbol: str
    description: str
    currency: str
    exchange: str
    type_code: str
    price: Decimal  # a realistic price at the start of a history; prices drift from it over time
    dividend: Decimal  # quarterly dividend per share, 0 when none
    figi: str | None
    id: str = field(default="")
    json: str = field(default="")


def _security(symbol: str, raw: str, desc: str, cur: str, exch: str, kind: str, price: str, div: str) -> Security:
    figi = None if kind == "crypto" else "BBG" + uuid.uuid5(_NS, "figi/" + symbol).hex[:9].upper()
    sid = stable_id("symbol", symbol)
    obj = {
        "id": sid,
        "symbol": symbol,
        "raw_symbol": raw,
        "description": desc,
        "currency": CURRENCIES[cur],
        "exchange": EXCHANGES[exch],
        "type": SECURITY_TYPES[kind],
        "figi_code": figi,
        "figi_instrument": None if figi is None else {"figi_code": figi, "figi_share_class": "BBG" + figi[3:]},
    }
    return Security(symbol, raw, desc, cur, exch, kind, Decimal(price), Decimal(div), figi, sid, json.dumps(obj))


_S = _security
US_STOCKS = [
    _S("AAPL", "AAPL", "Apple Inc.", "USD", "NASDAQ", "cs", "142.50", "0.24"),
    _S("MSFT", "MSFT", "Microsoft Corporation", "USD", "NASDAQ", "cs", "251.20", "0.68"),
    _S("NVDA", "NVDA", "NVIDIA Corporation", "USD", "NASDAQ", "cs", "48.31", "0.01"),
    _S("AMZN", "AMZN", "Amazon.com, Inc.", "USD", "NASDAQ", "cs", "103.45", "0"),
    _S("GOOGL", "GOOGL", "Alphabet Inc. Class A", "USD", "NASDAQ", "cs", "96.73", "0.20"),
    _S("META", "META", "Meta Platforms, Inc.", "USD", "NASDAQ", "cs", "188.77", "0.50"),
    _S("TSLA", "TSLA", "Tesla, Inc.", "USD", "NASDAQ", "cs", "182.63", "0"),
    _S("JPM", "JPM", "JPMorgan Chase & Co.", "USD", "NYSE", "cs", "133.41", "1.15"),
    _S("KO", "KO", "The Coca-Cola Company", "USD", "NYSE", "cs", "61.07", "0.485"),
    _S("JNJ", "JNJ", "Johnson & Johnson", "USD", "NYSE", "cs", "158.02", "1.24"),
    _S("XOM", "XOM", "Exxon Mobil Corporation", "USD", "NYSE", "cs", "104.88", "0.95"),
    _S("TSM", "TSM", "Taiwan Semiconductor Manufacturing - ADR", "USD", "NYSE", "ad", "88.12", "0.54"),
]
US_ETFS = [
    _S("SPY", "SPY", "SPDR S&P 500 ETF Trust", "USD", "ARCA", "et", "401.22", "1.59"),
    _S("QQQ", "QQQ", "Invesco QQQ Trust, Series 1", "USD", "NASDAQ", "et", "318.40", "0.57"),
    _S("VTI", "VTI", "Vanguard Total Stock Market ETF", "USD", "ARCA", "et", "204.31", "0.83"),
    _S("SCHD", "SCHD", "Schwab U.S. Dividend Equity ETF", "USD", "ARCA", "et", "72.18", "0.61"),
    _S("BND", "BND", "Vanguard Total Bond Market ETF", "USD", "NASDAQ", "et", "72.94", "0.21"),
]
US_FUNDS = [
    _S("VFIAX", "VFIAX", "Vanguard 500 Index Fund Admiral Shares", "USD", "OTC", "oef", "368.15", "1.52"),
    _S("FXAIX", "FXAIX", "Fidelity 500 Index Fund", "USD", "OTC", "oef", "142.60", "0.58"),
]
CA_STOCKS = [
    _S("RY.TO", "RY", "Royal Bank of Canada", "CAD", "TSX", "cs", "131.20", "1.38"),
    _S("TD.TO", "TD", "The Toronto-Dominion Bank", "CAD", "TSX", "cs", "82.45", "1.02"),
    _S("ENB.TO", "ENB", "Enbridge Inc.", "CAD", "TSX", "cs", "51.78", "0.915"),
    _S("SHOP.TO", "SHOP", "Shopify Inc.", "CAD", "TSX", "cs", "66.10", "0"),
    _S("CNR.TO", "CNR", "Canadian National Railway Company", "CAD", "TSX", "cs", "160.33", "0.79"),
]
CA_ETFS = [
    _S("VAB.TO", "VAB", "Vanguard Canadian Aggregate Bond Index ETF", "CAD", "TSX", "et", "23.41", "0.06"),
    _S("XEQT.TO", "XEQT", "iShares Core Equity ETF Portfolio", "CAD", "TSX", "et", "24.87", "0.13"),
    _S("VFV.TO", "VFV", "Vanguard S&P 500 Index ETF", "CAD", "TSX", "et", "98.52", "0.33"),
]
CRYPTO = [
    _S("BTC", "BTC", "Bitcoin", "USD", "CRYPTO", "crypto", "28450.12", "0"),
    _S("ETH", "ETH", "Ethereum", "USD", "CRYPTO", "crypto", "1812.37", "0"),
    _S("SOL", "SOL", "Solana", "USD", "CRYPTO", "crypto", "21.44", "0"),
    _S("DOGE", "DOGE", "Dogecoin", "USD", "CRYPTO", "crypto", "0.0734", "0"),
    _S("ADA", "ADA", "Cardano", "USD", "CRYPTO", "crypto", "0.3812", "0"),
]


@dataclass(frozen=True)
class AccountProfile:
    """What one sandbox account holds and how its history is generated."""

    key: str  # its stories in scenarios.py
    name: str
    currency: str
    raw_type: str
    cash_or_margin: str


@dataclass(frozen=True)
class SandboxBrokerage:
    slug: str
    display_name: str
    description: str
    allows_trading: bool
    date_only: bool
    accounts: tuple[AccountProfile, ...]

    @property
    def id(self) -> str:
        return stable_id("brokerage", self.slug)

    def as_json(self) -> dict[str, object]:
        """SnapTrade's Brokerage object."""
        logo = f"https://passiv-brokerage-logos.s3.ca-central-1.amazonaws.com/{self.slug.lower()}.png"
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.display_name,
            "display_name": self.display_name,
            "description": self.description,
            "aws_s3_logo_url": logo,
            "aws_s3_square_logo_url": logo.replace(".png", "-square.png"),
            "url": f"https://{self.slug.lower().replace('_', '-')}.sandbox.invalid",
            "enabled": True,
            "maintenance_mode": False,
            "is_degraded": False,
            "allows_trading": self.allows_trading,
            "brokerage_type": {"id": stable_id("brokerage_type", "traditional"), "name": "Traditional Brokerage"},
            "allows_fractional_units": True,
            "has_reporting": True,
            "is_real_time_connection": False,
            "exchanges": [],
            "open_url": None,
        }


BROKERAGES: dict[str, SandboxBrokerage] = {
    b.slug: b
    for b in [
        SandboxBrokerage(
            "SANDBOX_US",
            "Sandbox US Brokerage",
            "US stocks, ETFs and options (sandbox)",
            True,
            False,
            (
                AccountProfile("us_margin", "Individual Margin", "USD", "Margin", "margin"),
                AccountProfile("us_ira", "Roth IRA", "USD", "Roth IRA", "cash"),
            ),
        ),
        SandboxBrokerage(
            "SANDBOX_CRYPTO",
            "Sandbox Crypto Exchange",
            "Crypto exchange with fractional units (sandbox)",
            True,
            False,
            (AccountProfile("crypto", "Crypto Wallet", "USD", "Crypto", "cash"),),
        ),
        SandboxBrokerage(
            "SANDBOX_CA",
            "Sandbox Canada Brokerage",
            "Canadian broker, CAD and USD accounts, FX-converted trades (sandbox)",
            True,
            False,
            (
                AccountProfile("ca_cad", "TFSA", "CAD", "TFSA", "cash"),
                AccountProfile("ca_usd", "RRSP USD", "USD", "RRSP", "cash"),
            ),
        ),
        SandboxBrokerage(
            "SANDBOX_DATEONLY",
            "Sandbox Date-Only Brokerage",
            "Reports trade dates without times (sandbox)",
            False,
            True,
            (AccountProfile("dateonly", "Brokerage Account", "USD", "Individual", "cash"),),
        ),
    ]
}
