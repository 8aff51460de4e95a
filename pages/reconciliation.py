"""The Operations page's reconciliation tab (staff): accounts whose imported history does not explain the
broker's positions, across users, newest first, and the activities the journal could not place.

A module of its own so Operations only calls `render_reconciliation_tab()`; it re-checks the staff role
itself and reads through core.reads.journal only.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.reads import formatting as fmt
from core.reads import journal as jr
from core.storage.db import session_scope
from pages.components import display_timezone, require_role

UNEXPLAINED_HEADERS = {"username": "User", "account": "Account", "differences": "Unexplained positions",
                       "differs_since": "Differs since", "positions_read_at": "Positions read",
                       "last_error": "Last read error"}  # fmt: skip
UNPLACEABLE_HEADERS = {"username": "User", "account": "Account", "activity_id": "SnapTrade activity",
                       "trade_date": "Trade date", "type": "Type", "instrument": "Instrument", "currency": "Currency",
                       "reason": "Why it could not be placed", "flagged_at": "Flagged"}  # fmt: skip


def _shown(df: pd.DataFrame, headers: dict[str, str], times: tuple[str, ...], tz_name: str) -> pd.DataFrame:
    out = df[list(headers)].copy()
    for col in times:
        out[col] = [fmt.format_timestamp(v, tz_name) if v is not None and not pd.isna(v) else "" for v in out[col]]
    return out.fillna("").rename(columns=headers)


def render_reconciliation_tab() -> None:
    require_role("staff")
    tz_name = display_timezone().key
    with session_scope() as session:
        unexplained = jr.unexplained_accounts(session)
        unplaceable = jr.unplaceable_activities(session)
    st.subheader(f"Positions the history does not explain ({len(unexplained)})")
    if unexplained.empty:
        st.success("Every account's imported history explains its broker positions.")
    else:
        st.caption("Newest first. Usually the history starts after the account's first purchases (moved in from "
                   "another broker); the trader sees each difference in words on their Positions page.")  # fmt: skip
        st.dataframe(_shown(unexplained, UNEXPLAINED_HEADERS, ("differs_since", "positions_read_at"), tz_name),
                     hide_index=True, width="stretch")  # fmt: skip
    st.subheader(f"Activities the journal could not place ({len(unplaceable)})")
    if unplaceable.empty:
        st.caption("None.")
    else:
        st.caption("Listed, never dropped: their round trips are flagged and left out of every metric.")
        st.dataframe(_shown(unplaceable, UNPLACEABLE_HEADERS, ("flagged_at",), tz_name), hide_index=True,
                     width="stretch")  # fmt: skip
