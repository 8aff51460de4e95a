"""The trade engine's front door: round trips, FIFO open lots, per-currency metrics, daily P&L and the
reconciliation with the broker, as pure functions (no database, no SnapTrade), re-exported from where
they live: `fills` (activities in), `trips` (order, round trips, lots), `metrics`, `reconcile`, `jsonout`
(the CLI's JSON) and `exact` (arithmetic that never rounds).

Input is a sequence of `Fill` records (one per stored activity that changes a position; `fill_from_row`
builds them from stored BrokerageTransaction-like rows) and `Unplaceable` records (activities the engine
cannot place). Output is exact `Decimal` throughout; the JSON helpers give the CLI's contract (issue 22).
The conventions of issue 22 are implemented as written. Where the issue leaves a choice open, the engine
decides as follows:

- Currencies are never mixed: round trips and lots are kept per (account, instrument, currency). An
  instrument bought in USD and sold in CAD is two separate positions (a long and a short).
- Order within a date: activities with a UTC instant come first, by instant; activities without a time
  come after them (a SPLIT or an expiration without a time then follows the day's timed trades, as the
  issue's tie rule does). Activity ids compare as plain text. A naive timestamp is read as UTC.
- For options the first word of `option_action` gives the side (BUY_TO_CLOSE is buy side); without it the
  type does. The OPEN/CLOSE half is not trusted: the position arithmetic decides what opens and closes.
- SPLIT changes the absolute open quantity by its signed units (a short of 100 with SPLIT +100 becomes a
  short of 200). REVERSE_SPLIT is a SPLIT that always shrinks: the quantity falls by |units|, whatever sign
  the broker wrote. A split that would take the position to zero or past it cannot be placed (below).
- Option events (expiration, assignment, exercise) and splits while flat change nothing: they are returned
  in `JournalResult.ignored`, not put in any round trip.
- `cost_unknown` also marks a round trip holding any activity whose notional is unknown: a sell side or a
  transfer out without a price (besides the issue's transfer in and BUY/REI with price missing or zero).
  A transfer in is cost_unknown even when the broker gave a price. `transferred` marks every round trip a
  transfer out takes part in, not only the one it closes.
- Activities the engine cannot place carry the flag `unplaceable`: an `Unplaceable` record (unknown
  multiplier, missing or zero units, a negative price, a type that moves a position but is not modelled
  such as STOCK_MERGER or SPINOFF, an option event without an option contract, a float where a Decimal
  belongs) and a split that would cross zero. Such an activity is listed in the round trip open at that
  moment (its fee counts there) and always in `JournalResult.unplaceable`; while flat it joins no round trip
  (flagging a neighbour that it did not touch would hide that neighbour from the metrics for nothing).
- Multiplier of an option row: 10 when the stored raw activity says `is_mini_option: true`, 100 when it
  says false or does not say (the field is optional in SnapTrade's schema); any other value is unknown.
  An activity without a usable instrument (no symbol, or an option event with no option contract) joins no
  book and is only listed in `JournalResult.unplaceable`.
- Crypto cannot be sold short: in a crypto instrument the part of a sell side beyond the position opens a
  short round trip flagged `unplaceable` (the units most likely came from outside the imported history:
  staking, an untracked transfer), and the activity is also listed in `JournalResult.unplaceable`.
- Exactness: sums and products are exact Decimals. A lot is kept as quantity × unit notional, so a partial
  sell never divides; only a split does (a 3-for-2 split of one share is 1.5, of three lots [1, 2] it is
  4/3 and 8/3), and then that lot switches to Fractions. A value given out is exact when it has a finite
  decimal expansion, else rounded half-even to 10 decimal places (such a lot's quantity or cost, and the
  ratios). JSON numbers are normalized ("1050.00" is written "1050").
- Metrics: gross profit and gross loss are "0" when nothing qualifies, max drawdown is "0" with no days;
  every other ratio, average and extreme is null without a qualifying trade. Trades without a currency form
  their own summary row with currency null, listed last.
"""

from core.journal.exact import fraction_to_decimal
from core.journal.fills import (
    Fill,
    Unplaceable,
    checked,
    fill_from_row,
    is_buy_side,
    option_multiplier,
    parse_instant,
    placement_problem,
)
from core.journal.jsonout import decimal_text, positions_json, to_json_dict, trades_json
from core.journal.metrics import DailyPnl, Summary, daily_pnl, max_drawdown, summarize
from core.journal.reconcile import BrokerPosition, ReconciledPosition, reconcile
from core.journal.trips import (
    JournalResult,
    OpenLot,
    OpenPosition,
    RoundTrip,
    build,
    build_instrument,
    order_fills,
    order_key,
)

__all__ = [
    "BrokerPosition",
    "DailyPnl",
    "Fill",
    "JournalResult",
    "OpenLot",
    "OpenPosition",
    "ReconciledPosition",
    "RoundTrip",
    "Summary",
    "Unplaceable",
    "build",
    "build_instrument",
    "checked",
    "daily_pnl",
    "decimal_text",
    "fill_from_row",
    "fraction_to_decimal",
    "is_buy_side",
    "max_drawdown",
    "option_multiplier",
    "order_fills",
    "order_key",
    "parse_instant",
    "placement_problem",
    "positions_json",
    "reconcile",
    "summarize",
    "to_json_dict",
    "trades_json",
]
