"""Pages of activities, newest first: date and type filters, offsets, backdated rows merged in, malformed rows.

Blocks of rendered rows and a one-byte-per-row type array are cached, so a page of a million-row history costs
about the same as a page of a small one.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from threading import Lock

from sandbox import render
from sandbox.hashing import mix64, uuid_from
from sandbox.history import AccountView, Extra
from sandbox.scenarios import BLOCK, TYPE_CODES
from sandbox.trader import plan_block, plan_extra

_BLOCK_CACHE: OrderedDict[tuple[object, int, int], list[str]] = OrderedDict()
_BLOCK_CACHE_MAX = 4096
_CACHE_LOCK = Lock()
_TYPES_CACHE: dict[tuple[object, ...], bytearray] = {}


def _institution(view: AccountView) -> str:
    return json.dumps(view.profile.institution)


def render_block(view: AccountView, block: int, upto: int) -> list[str]:
    """Bodies of rows block*8 .. min(block*8+8, upto); rows past the end of the history are not rendered."""
    n = min(BLOCK, upto - block * BLOCK)
    cache_key = (view.identity, block, n)
    with _CACHE_LOCK:
        hit = _BLOCK_CACHE.get(cache_key)
        if hit is not None:
            _BLOCK_CACHE.move_to_end(cache_key)
            return hit
    scenario = view.scenario(block)
    stamps = view.block_stamps(block, n, scenario)
    fills = plan_block(view, block, stamps, scenario)
    profile, inst, styles = view.profile, _institution(view), mix64(view.key ^ block)
    bodies = [
        render.render_fill(f, profile, inst, day, secs, styles >> k & 1)
        for k, (f, (day, secs)) in enumerate(zip(fills, stamps, strict=True))
    ]
    with _CACHE_LOCK:
        _BLOCK_CACHE[cache_key] = bodies
        if len(_BLOCK_CACHE) > _BLOCK_CACHE_MAX:
            _BLOCK_CACHE.popitem(last=False)
    return bodies


def render_extra(view: AccountView, extra: Extra) -> str:
    fill = plan_extra(view, extra.serial, extra.kind, extra.day)
    style = mix64(view.key ^ ~extra.serial) & 1
    return render.render_fill(fill, view.profile, _institution(view), extra.day, extra.secs, style)


def type_array(view: AccountView) -> bytearray:
    """Type code of every base row, built from scenario patterns (1 byte per row)."""
    with _CACHE_LOCK:
        arr = _TYPES_CACHE.get(view.identity)
    if arr is None:
        arr = bytearray()
    if len(arr) < view.count:
        first_block = len(arr) // BLOCK
        last_block = (view.count + BLOCK - 1) // BLOCK
        # build a new array rather than extending in place: other threads may be reading the cached one
        arr = arr[: first_block * BLOCK] + b"".join(view.scenario(b).types for b in range(first_block, last_block))
        with _CACHE_LOCK:
            _TYPES_CACHE[view.identity] = arr
    return arr if len(arr) == view.count else arr[: view.count]


@dataclass(frozen=True)
class Query:
    start_day: int | None = None
    end_day: int | None = None
    types: frozenset[str] | None = None
    offset: int = 0
    limit: int = 1000


@dataclass
class _Selection:
    """The base rows and backdated rows a query matches, and where each backdated row sits among them."""

    lo: int
    hi: int
    mask: bytearray | None  # 1 for a base row whose type matches; None when every type does
    base_total: int
    extras: list[Extra]
    positions: list[int]  # merged position (newest first) of each matching extra

    @property
    def total(self) -> int:
        return self.base_total + len(self.extras)


def _select(view: AccountView, q: Query) -> _Selection:
    lo = 0 if q.start_day is None else view.first_index_after(q.start_day * 86400 - 1)
    hi = view.count if q.end_day is None else view.first_index_after((q.end_day + 1) * 86400 - 1)
    hi = max(hi, lo)
    mask = None
    codes: set[int] = set()
    if q.types is not None:
        codes = {TYPE_CODES[t] for t in q.types if t in TYPE_CODES}
        table = bytes(1 if b in codes else 0 for b in range(256))
        mask = type_array(view).translate(table)
    base_total = mask.count(1, lo, hi) if mask is not None else hi - lo

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
    return _Selection(lo, hi, mask, base_total, extras, positions)


def page(view: AccountView, q: Query) -> tuple[int, list[str]]:
    """(total matching, JSON texts of the rows on this page), newest first."""
    sel = _select(view, q)
    start, stop = q.offset, min(sel.total, q.offset + q.limit)
    if start >= stop:
        return sel.total, []
    positions, extras = sel.positions, sel.extras
    extras_before = bisect_right(positions, start - 1)
    need_base = (stop - start) - (bisect_right(positions, stop - 1) - extras_before)
    indices = _base_indices(sel.mask, sel.lo, sel.hi, start - extras_before, need_base)
    out: list[str] = []
    clean = view.malformed.rate <= 0.0  # fast path: no per-row damage check
    rekeys, key, count = view.rekeys, view.key, view.count
    ei, bi = extras_before, 0
    blocks: dict[int, list[str]] = {}
    for pos in range(start, stop):
        if ei < len(extras) and positions[ei] == pos:
            e = extras[ei]
            ei += 1
            out.append(_finish(view, ~e.serial, view.extra_id(e.serial), render_extra(view, e)))
            continue
        i = indices[bi]
        bi += 1
        bodies = blocks.get(i // BLOCK)
        if bodies is None:
            bodies = blocks[i // BLOCK] = render_block(view, i // BLOCK, count)
        if clean:  # view.row_id(i), inlined
            out.append(
                '{"id":"'
                + (rekeys.get(i) or uuid_from(key ^ (i * 0x2545F4914F6CDD1D)))
                + '",'
                + bodies[i % BLOCK]
                + "}"
            )
        else:
            out.append(_finish(view, i, view.row_id(i), bodies[i % BLOCK]))
    return sel.total, out


def _finish(view: AccountView, token: int, row_id: str, body: str) -> str:
    kind = view.is_malformed(token)
    if kind < 0:
        return '{"id":"' + row_id + '",' + body + "}"
    return render.damage(kind, row_id, body)


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
