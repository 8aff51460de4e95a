"""JSON that keeps decimals exact: Decimal values are written as JSON numbers with their exact
digits (never through float), and read back as Decimal. Used for the raw SnapTrade payloads.
"""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from typing import Any

# A Decimal is written as a marked string, then unquoted in the text. The marker carries a random token of
# this process, so a real string can never look like one (a payload would have to guess 64 random bits).
_TOKEN = secrets.token_hex(8)
_MARK = f"\u0000dec{_TOKEN}:"
_ENCODED_MARK = f"\\u0000dec{_TOKEN}:"
_MARKED = re.compile(r'"\\u0000dec' + _TOKEN + r':([-+0-9.eE]+)"')


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        if not o.is_finite():
            return str(o)
        return f"{_MARK}{o}"
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


class JSONText(str):
    """Already-serialized JSON: `dumps` passes it through, so a row is serialized once, not twice."""


def dumps(obj: Any, *, sort_keys: bool = False) -> str:
    if type(obj) is JSONText:
        return obj
    text = json.dumps(obj, default=_default, sort_keys=sort_keys, separators=(",", ":"))
    return _MARKED.sub(r"\1", text) if _ENCODED_MARK in text else text


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)
