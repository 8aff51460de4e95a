"""Split a SnapTrade `{data: [...], pagination: {...}}` page into parsed activities and the exact
JSON text of each one, in a single pass of the C scanner.

Keeping each activity's original text means the raw record is stored exactly as SnapTrade sent it
and is hashed without being serialized again.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from json.decoder import scanstring

_decoder = json.JSONDecoder(parse_float=Decimal)
_ws = re.compile(r"[ \t\n\r]*")
_WHITESPACE = frozenset(" \t\n\r")


def _skip(text: str, idx: int) -> int:
    return _ws.match(text, idx).end()


def split_page(text: str) -> tuple[dict, list[str] | None]:
    """Parse a page with exact decimals; `data` items come with their source text (None when the
    layout is unusual, then only the parsed body is returned)."""
    try:
        return _split(text)
    except (ValueError, IndexError):
        return _decoder.decode(text), None


def _split(text: str) -> tuple[dict, list[str]]:
    idx = _skip(text, 0)
    if text[idx] != "{":
        raise ValueError("not an object")
    idx = _skip(text, idx + 1)
    body: dict = {}
    slices: list[str] = []
    if text[idx] == "}":
        return body, slices
    while True:
        if text[idx] != '"':
            raise ValueError("expected a key")
        key, idx = scanstring(text, idx + 1)
        idx = _skip(text, idx)
        if text[idx] != ":":
            raise ValueError("expected ':'")
        idx = _skip(text, idx + 1)
        if key == "data" and text[idx] == "[":
            items: list = []
            idx = _skip(text, idx + 1)
            if text[idx] == "]":
                idx += 1
            else:
                # A thousand items a page: the whitespace regex only where there is whitespace (a compact page has none).
                decode, append, keep = _decoder.raw_decode, items.append, slices.append
                while True:
                    item, end = decode(text, idx)
                    append(item)
                    keep(text[idx:end])
                    if text[end] in _WHITESPACE:
                        end = _skip(text, end)
                    ch = text[end]
                    idx = end + 1
                    if ch == "]":
                        break
                    if ch != ",":
                        raise ValueError("expected ',' in data")
                    if text[idx] in _WHITESPACE:
                        idx = _skip(text, idx)
            body[key] = items
        else:
            body[key], idx = _decoder.raw_decode(text, idx)
        idx = _skip(text, idx)
        ch = text[idx]
        if ch == "}":
            return body, slices
        if ch != ",":
            raise ValueError("expected ','")
        idx = _skip(text, idx + 1)
