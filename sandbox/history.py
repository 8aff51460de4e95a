"""One account's history as a function of the row index: its timeline, its stories, its securities and its ids.

Row i is computed from (seed, account, i) alone, so any page of a million-row history is produced directly. Times are
a monotone function of the index on the exchange's open days (crypto trades every day), which makes "newest first"
simply "highest index first". Mutations (re-keys, backdated rows) are small overlays kept in `AccountView`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property

from sandbox import trading_days
from sandbox.catalog import Security
from sandbox.hashing import M64, mix64, unit, uuid_from
from sandbox.scenarios import (
    BLOCK,
    BOOKS,
    LATE_HISTORY_PROFILE,
    PLAIN,
    SAME_TIME,
    TOUR_SPACING,
    TOURS,
    UNIVERSES,
    Scenario,
    market,
)

DAMAGE_KINDS = 5  # how many ways a malformed row can be broken (render.damage)
SESSION = {False: (48600, 23400), True: (0, 86400)}  # (start, length) in seconds UTC: US hours / crypto all day
AFTER_HOURS = 72000  # rows synced for a day the exchange was closed land after the close of its last open day
SPLIT_TOUR_STORY = next(t for t, kinds in enumerate(TOURS["us_margin"]) if "SPLIT_T" in kinds)


@dataclass(frozen=True)
class Segment:
    """`count` rows spread evenly over the open days among `days` days starting at `first_day`."""

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

    @cached_property
    def market(self) -> str:
        return market(self.key)


@dataclass(frozen=True)
class Malformed:
    rate: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Split:
    """The account's one stock split: from block `block` on, `symbol` trades at 1/`ratio` of its former price."""

    symbol: str
    block: int
    ratio: int


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
    spans: tuple[tuple[int, int], ...] = ()  # per segment: (index of its first open day, open days it covers)
    identity: tuple[object, ...] = ()  # what the rows follow from: the key for process-wide caches

    def __post_init__(self) -> None:
        self.starts = tuple(s.start for s in self.segments)
        # Accounts of two sandboxes (one seed, one user) share ids and keys whatever their brokerage or size, so
        # caches that outlive a sandbox key rows by everything that shapes them; later segments only append rows.
        self.identity = (self.key, self.profile.key, self.segments[0])
        market = self.profile.market
        self.spans = tuple(
            (trading_days.count_before(market, s.first_day), self._open_days_in(s)) for s in self.segments
        )

    def _open_days_in(self, s: Segment) -> int:
        if self.profile.crypto:
            return s.days
        market = self.profile.market
        return trading_days.count_before(market, s.first_day + s.days) - trading_days.count_before(market, s.first_day)

    @property
    def count(self) -> int:
        last = self.segments[-1]
        return last.start + last.count

    # -- scenario and time --------------------------------------------------------------------------------------------
    def scenario(self, block: int) -> Scenario:
        return BOOKS[self.profile.key].pick(self.key, block)

    def raw_stamp(self, i: int) -> tuple[int, int]:
        """(day, seconds) of row i on the timeline, before linked rows borrow their predecessor's time."""
        k = bisect_right(self.starts, i) - 1  # callers never append empty segments
        seg = self.segments[k]
        rel = i - seg.start
        first_open, n_days = self.spans[k]
        if n_days == 0:
            return self._closed_day_stamp(seg, rel)
        day_rel = rel * n_days // seg.count
        day_start = -(-day_rel * seg.count // n_days)
        c = -(-(day_rel + 1) * seg.count // n_days) - day_start
        crypto = self.profile.crypto
        day = seg.first_day + day_rel if crypto else trading_days.open_days(self.profile.market)[first_open + day_rel]
        if self.profile.date_only:
            return day, 0
        lo, span = SESSION[crypto]
        jitter = (((self.key + i) * 0x9E3779B97F4A7C15 & M64) >> 40) * span >> 24  # multiplicative hash: top bits
        return day, lo + ((rel - day_start) * span + jitter) // c

    def _closed_day_stamp(self, seg: Segment, rel: int) -> tuple[int, int]:
        # a day synced while the exchange was closed: its rows are the last open day's after-hours trades
        day = trading_days.last_open_on_or_before(self.profile.market, seg.first_day)
        if self.profile.date_only:
            return day, 0
        lo = min(AFTER_HOURS + (seg.first_day - day - 1) * 3600, 86400 - 3600)
        return day, lo + (rel * 3600 + mix64(self.key + seg.start + rel) % 3600) // seg.count

    def linked_stamp(self, link: int, prev: tuple[int, int], i: int) -> tuple[int, int]:
        """Time of row i whose story links it to the row before (which is at `prev`): same time, or same day later.

        Never later than row i's own timeline time, so times stay monotone in the index.
        """
        if link == SAME_TIME:
            return prev
        day, secs = self.raw_stamp(i)
        if day == prev[0] and secs >= prev[1]:
            return day, secs
        if self.profile.date_only:
            return prev
        close = 86399 if self.profile.crypto or prev[1] >= AFTER_HOURS else AFTER_HOURS
        step = max(1, int((close - prev[1]) * (0.2 + 0.6 * unit(self.key ^ i))))
        return prev[0], min(prev[1] + step, 86399)

    def stamp(self, i: int) -> tuple[int, int]:
        """Effective (day, seconds) of base row i; a block's first row always has its own time."""
        links = self.scenario(i // BLOCK).links
        j = i
        while links[j % BLOCK] != PLAIN:
            j -= 1
        s = self.raw_stamp(j)
        for k in range(j + 1, i + 1):
            s = self.linked_stamp(links[k % BLOCK], s, k)
        return s

    def block_stamps(self, block: int, n: int, scenario: Scenario | None = None) -> list[tuple[int, int]]:
        """Times of the first n rows of a block."""
        links = (scenario or self.scenario(block)).links
        start = block * BLOCK
        stamps = [self.raw_stamp(start)]
        for k in range(1, n):
            stamps.append(self.linked_stamp(links[k], stamps[-1], start + k) if links[k] else self.raw_stamp(start + k))
        return stamps

    def expected_day(self, i: int) -> int:
        """Row i's day if it is in the first segment, else extrapolated from that segment's pace.

        Option expiries are chosen from this, so they never change when later days are appended.
        """
        seg = self.segments[0]
        if i < seg.count:
            return self.raw_stamp(i)[0]
        return seg.first_day + seg.days - 1 + (i - seg.count + 1) * seg.days // max(seg.count, 1)

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

    # -- what the account trades --------------------------------------------------------------------------------------
    @cached_property
    def pools(self) -> dict[str, list[Security]]:
        pools = dict(UNIVERSES[self.profile.key])
        held = self.held_before_history
        if held:  # the stock held from before is only ever sold, never traded in round trips
            pools["T"] = [s for s in pools["T"] if s not in held]
        return pools

    def securities(self, block: int) -> dict[str, Security]:
        """The security of each slot in a block (by hashing, so the split and positions can ask cheaply)."""
        h = mix64(self.key ^ mix64(block + 0x5EC0))
        return {slot: pool[(h >> 16 * n & 0xFFFF) % len(pool)] for n, (slot, pool) in enumerate(self.pools.items())}

    @cached_property
    def held_before_history(self) -> dict[Security, int]:
        """Units the late-history account held before its history begins: a stock and an ETF (empty elsewhere)."""
        if self.profile.key != LATE_HISTORY_PROFILE:
            return {}
        stocks, etfs = UNIVERSES[self.profile.key]["T"], UNIVERSES[self.profile.key]["H"]
        stock = stocks[mix64(self.key ^ 0x1A7E) % len(stocks)]
        etf = etfs[mix64(self.key ^ 0xE7F) % len(etfs)]
        return {stock: 40 + mix64(self.key ^ 0x5707) % 81, etf: 10 + mix64(self.key ^ 0xE7F0) % 51}

    @cached_property
    def split(self) -> Split | None:
        """The split the margin account's tour contains, once that block exists."""
        if self.profile.key != "us_margin":
            return None
        block = SPLIT_TOUR_STORY * TOUR_SPACING
        if self.count <= block * BLOCK:
            return None
        ratio = (2, 3, 4, 5, 10)[mix64(self.key ^ 0x5B11) % 5]
        return Split(self.securities(block)["T"].symbol, block, ratio)

    def price_factor(self, symbol: str, block: int) -> int:
        """1, or the split ratio the price of `symbol` is divided by in blocks after the split."""
        s = self.split
        return s.ratio if s is not None and block > s.block and s.symbol == symbol else 1

    # -- identity -----------------------------------------------------------------------------------------------------
    def row_id(self, i: int) -> str:
        # paging.page() inlines this formula on its fast path; keep the two in step
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
        return h % DAMAGE_KINDS
