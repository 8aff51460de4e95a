"""Planned rows to SnapTrade's activity JSON text, and the damage done to malformed rows.

Numbers are Decimals written with format(..., "f"), so there are no float artifacts on the wire. Rows are JSON text
from the start: a page is a join of row texts, never a json.dumps of dicts (the million-row profiles need the speed).
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal

from sandbox import catalog, trading_days
from sandbox.catalog import CURRENCIES, Security
from sandbox.history import Profile
from sandbox.market import Contract
from sandbox.trader import Fill

T1_SETTLEMENT_FROM = date(2024, 5, 28).toordinal()  # US and Canada moved from T+2 to T+1 settlement that week

_CUR_JSON = {code: json.dumps(obj, separators=(",", ":")) for code, obj in CURRENCIES.items()}
_SYMBOL_JSON: dict[str, str] = {}
_OPTION_JSON: dict[tuple[str, str], str] = {}
_ISO_DAYS: dict[int, str] = {}
_CLOCK: dict[int, str] = {}
_SETTLE_DAYS: dict[tuple[str, int, int], int] = {}


def num(d: Decimal) -> str:
    if not d:
        return "0"
    return format(d, "f")


def jstr(text: str) -> str:
    """JSON string literal; our generated texts rarely need escaping, so skip json.dumps when they don't."""
    if '"' in text or "\\" in text or not text.isascii():
        return json.dumps(text)
    return '"' + text + '"'


def iso_day(day: int) -> str:
    s = _ISO_DAYS.get(day)
    if s is None:
        s = _ISO_DAYS[day] = date.fromordinal(day).isoformat()
    return s


def symbol_json(sec: Security) -> str:
    text = _SYMBOL_JSON.get(sec.symbol)
    if text is None:
        text = _SYMBOL_JSON[sec.symbol] = json.dumps(json.loads(sec.json), separators=(",", ":"))
    return text


def option_json(c: Contract, padded: bool) -> str:
    """SnapTrade's OptionsSymbol. It keys option symbols by the ticker string it received, so the two OCC spellings
    of one contract get different ids."""
    ticker = c.ticker(padded)
    key = (ticker, c.underlying.symbol)
    text = _OPTION_JSON.get(key)
    if text is None:
        if len(_OPTION_JSON) > 200_000:  # bounded: contracts are cheap to rebuild
            _OPTION_JSON.clear()
        strike = num(c.strike.normalize()) if c.strike == c.strike.to_integral() else num(c.strike)
        text = _OPTION_JSON[key] = (
            f'{{"id":"{catalog.stable_id("option", ticker)}","ticker":"{ticker}",'
            f'"option_type":"{"CALL" if c.cp == "C" else "PUT"}","strike_price":{strike},'
            f'"expiration_date":"{iso_day(c.expiry)}","underlying_symbol":{symbol_json(c.underlying)},'
            f'"is_mini_option":false}}'
        )
    return text


def settlement_day(profile: Profile, day: int) -> int:
    business_days = 1 if day >= T1_SETTLEMENT_FROM or profile.crypto else 2
    key = (profile.market, day, business_days)
    hit = _SETTLE_DAYS.get(key)
    if hit is None:
        hit = _SETTLE_DAYS[key] = trading_days.settlement_day(profile.market, day, business_days)
    return hit


def trade_date(profile: Profile, day: int, secs: int, style: int) -> str:
    """The trade date as the broker writes it; date-only brokers send either `YYYY-MM-DD` or midnight UTC."""
    if profile.date_only:
        return f'"{iso_day(day)}"' if style else f'"{iso_day(day)}T00:00:00Z"'
    clock = _CLOCK.get(secs)
    if clock is None:
        clock = _CLOCK[secs] = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return f'"{iso_day(day)}T{clock}Z"'


def render_fill(f: Fill, profile: Profile, institution: str, day: int, secs: int, style: int) -> str:
    """JSON body (without id and braces) of one planned row at (day, secs)."""
    # the hot path of every page: numbers are written inline rather than through num()
    settle = settlement_day(profile, day) if f.settles else day
    price, units, amount, fee, fx, ref = f.price, f.units, f.amount, f.fee, f.fx, f.ref
    if f.contract is not None:
        symbols = '"symbol":null,"option_symbol":' + option_json(f.contract, f.padded)
    elif f.sec is not None:
        symbols = '"symbol":' + symbol_json(f.sec) + ',"option_symbol":null'
    else:
        symbols = '"symbol":null,"option_symbol":null'
    return (
        f'{symbols},"price":{format(price, "f") if price else "0"},"units":{format(units, "f") if units else "0"},'
        f'"amount":{"null" if amount is None else format(amount, "f") if amount else "0"},'
        f'"currency":{_CUR_JSON[profile.currency]},"type":"{f.type}","option_type":"{f.option_type}",'
        f'"description":{jstr(f.description)},'
        f'"trade_date":{trade_date(profile, day, secs, style) if f.dated else "null"},'
        f'"settlement_date":"{iso_day(settle)}T00:00:00Z","fee":{format(fee, "f") if fee else "0"},'
        f'"fx_rate":{"null" if fx is None else format(fx, "f")},"institution":{institution},'
        f'"external_reference_id":{"null" if ref is None else chr(34) + ref + chr(34)}'
    )


# ---------------------------------------------------------------------------------------------------------------------
# Malformed rows: damage applied to rendered text, so good and bad rows share one code path.

_AMOUNT = re.compile(r'"amount":[^,]*')
_UNITS = re.compile(r'"units":[^,]*')
_TRADE = re.compile(r'"trade_date":(null|"[^"]*"),')
_SETTLE = re.compile(r'"settlement_date":"[^"]*",')


def damage(kind: int, row_id: str, body: str) -> str:
    """The whole row text, broken in one of five ways (history.DAMAGE_KINDS)."""
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
