"""Positions page: per account, what the imported history says you hold (FIFO cost basis) beside what the
broker reports, each difference explained in words, and a "Reconcile" button that reads the broker now.

Thin: core.reads.journal.account_positions reads, core.journal.upkeep.reconcile_positions reads the broker
(one request per account, never raises for a failed read).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.journal.upkeep import reconcile_positions
from core.reads import formatting as fmt
from core.reads import journal as jr
from core.snaptrade.client import SnapTradeError
from core.storage.db import session_scope
from pages.components import fmt_when, require_user

FLASH_KEY = "pos_flash"
STATUS_LABELS = {"matched": "✅ Matches", "differs": "⚠️ Differs", "not_at_broker": "⚠️ Not at broker",
                 "only_at_broker": "⚠️ Only at broker", "not_read": "… Not read yet"}  # fmt: skip


def _reconcile(user_id: int, account_id: int | None) -> None:
    """Button callback: read positions now, then say what happened (the page re-renders with the result)."""
    try:
        with session_scope() as session:
            reads = reconcile_positions(session, user_id, account_id)
    except SnapTradeError as exc:
        st.session_state[FLASH_KEY] = ("error", f"Could not reach your broker: {exc}")
        return
    if not reads:
        st.session_state[FLASH_KEY] = ("info", "No connected account to read positions from.")
        return
    failed = [r for r in reads if not r.ok]
    if failed:
        st.session_state[FLASH_KEY] = ("warning", f"{len(reads) - len(failed)} of {len(reads)} account(s) read; "
                                       f"the last good positions are kept for the others ({failed[0].error}).")  # fmt: skip
    else:
        st.session_state[FLASH_KEY] = ("success", f"Positions read just now for {len(reads)} account(s).")


def _flash() -> None:
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        kind, message = flash
        getattr(st, kind)(message)


def _table(acct: jr.AccountPositions) -> pd.DataFrame:
    rows = acct.rows
    return pd.DataFrame({
        "Instrument": [r.display for r in rows],
        "History": [fmt.format_quantity(r.quantity) for r in rows],
        "Cost basis (FIFO)": [fmt.format_money(r.cost_basis, r.currency) if r.cost_basis is not None else "unknown"
                              for r in rows],
        "Broker": [fmt.format_quantity(r.broker_quantity) if r.broker_quantity is not None else "—" for r in rows],
        "Status": [STATUS_LABELS.get(r.status, r.status) for r in rows],
    })  # fmt: skip


def _account(acct: jr.AccountPositions, user_id: int) -> None:
    with st.container(border=True):
        head, button = st.columns([4, 1])
        head.subheader(acct.account)
        button.button("Reconcile", key=f"pos_reconcile_{acct.account_id}", on_click=_reconcile,
                      args=(user_id, acct.account_id), help="Read this account's positions from the broker now")  # fmt: skip
        if acct.positions_read_at is None:
            st.caption("The broker's positions have not been read yet.")
        else:
            st.caption(f"Broker positions read {fmt_when(acct.positions_read_at)}.")  # its age in brackets
        if acct.last_error:
            st.warning(f"The last read failed ({fmt_when(acct.last_attempt_at)}): {fmt.clause(acct.last_error)}. "
                       "The positions shown are from the last good read.")  # fmt: skip
        if not acct.rows:
            st.caption("Nothing held, by the history or the broker.")
            return
        if acct.differences:
            st.warning(f"{acct.differences} position(s) the imported history does not explain.")
        elif acct.positions_read_at is not None:
            st.success("The imported history explains every position the broker reports.")
        st.dataframe(_table(acct), hide_index=True, width="stretch", key=f"pos_table_{acct.account_id}")
        for row in acct.rows:
            if row.status not in ("matched", "not_read"):
                st.markdown(f"- **{row.display}**: {row.explanation}")


def render() -> None:
    st.title("Positions")
    user_id = require_user().user_id
    _flash()
    with session_scope() as session:
        accounts = jr.account_positions(session, user_id)
    if not accounts:
        st.info("No accounts yet: connect a broker and import your history first.")
        return
    st.caption("What your imported history says you hold, beside what your broker reports. A difference usually "
               "means part of your history is missing (for example, shares bought before it begins).")  # fmt: skip
    st.button("Reconcile all accounts", key="pos_reconcile_all", on_click=_reconcile, args=(user_id, None))
    for acct in accounts:
        _account(acct, user_id)


render()
