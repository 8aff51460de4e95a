"""The Transactions grid: every column sized to what it shows, so a number is never cut, with the
description still in view at 1400 px; and the selected row kept by transaction id across filters and pages.

st.dataframe draws on a canvas (glide-data-grid) and clips a cell's text at its edges: a right-aligned
number in a narrow column loses its leading digits. Widths are therefore computed here from the page's
own text in the grid's font (Source Sans, 14 px; widths measured in Chromium), numbers with a margin.
tests/e2e/test_transactions_view.py checks the rendered cells against their columns.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

TABLE_KEY = "txn_table"
SHOWN_IDS_KEY = "txn_shown_ids"  # ids of the rows drawn last run, in order: what a selected position means
SELECTED_KEY = "txn_selected_id"

GRID_PX = 938  # the table's width in a 1400 px window with the sidebar open
ROW_MARKER_PX = 32  # the selection checkbox column
CELL_PADDING_PX = 17  # 8.5 px either side of the text
DESCRIPTION_MIN_PX = 160
# Streamlit wraps cell text only in rows taller than 64 px: three lines of 14 px text.
WRAPPED_ROW_PX = 68
ONE_LINE_CAPS = {"Account": 180, "Type": 250, "Symbol": 170}
WRAPPED_CAPS = {"Account": 100, "Type": 100, "Symbol": 100}  # "Transfer out to / another / institution"
NUMBER_COLUMNS = ("Quantity", "Price", "Amount", "Fee")
TEXT_COLUMNS = ("Account", "Type", "Symbol")

# Advance widths in Source Sans at 14 px: exact for digits and the signs numbers use; letters are estimated
# on the wide side (they only decide whether a text column wraps).
_CHAR_PX = {**dict.fromkeys("0123456789", 6.96), **dict.fromkeys(".,:;'", 3.49), "-": 4.36, " ": 2.8, "•": 4.26}


def text_px(text: str) -> float:
    return sum(_CHAR_PX.get(c, 8.6 if c.isupper() else 7.3) for c in text)


def fit_px(values, header: str) -> int:
    """The width a column needs to show its header and every value whole (6 % spare for font differences)."""
    widest = max((text_px(str(v)) for v in values), default=0.0)
    return math.ceil(max(widest, text_px(header)) * 1.06) + CELL_PADDING_PX + 2


def layout(df: pd.DataFrame, currency: str | None) -> tuple[dict, list[str], int | None]:
    """(column_config, column_order, row_height) for a page of transactions.

    Numbers, the date and the currency get exactly the width their text needs. When the account, type,
    symbol and description texts also fit on one line in what is left of the 1400 px table, rows stay one
    line high; otherwise those four wrap in three-line rows, so the description stays in view either way
    (only numbers of extreme length push it out to the right). `currency` is the page's one currency, shown
    in the Amount header instead of a column; None when the page mixes currencies."""
    labels = {"Quantity": "Qty", "Price": "Price", "Amount": f"Amount ({currency})" if currency else "Amount",
              "Fee": "Fee", "Currency": "Ccy"}  # fmt: skip
    order = ["Date", *TEXT_COLUMNS, *NUMBER_COLUMNS, *([] if currency else ["Currency"]), "Description"]
    fixed = {c: fit_px(df[c], labels.get(c, c)) for c in ("Date", *NUMBER_COLUMNS, "Currency") if c in order}
    used = ROW_MARKER_PX + sum(fixed.values())
    natural = {c: fit_px(df[c], c) for c in (*TEXT_COLUMNS, "Description")}
    one_line = {c: min(natural[c], ONE_LINE_CAPS[c]) for c in TEXT_COLUMNS}
    texts_fit = all(natural[c] <= ONE_LINE_CAPS[c] for c in TEXT_COLUMNS)
    if texts_fit and used + sum(one_line.values()) + max(natural["Description"], DESCRIPTION_MIN_PX) <= GRID_PX:
        widths, row_height = one_line, None
    else:
        widths, row_height = _wrapped(df, natural, GRID_PX - used - DESCRIPTION_MIN_PX), WRAPPED_ROW_PX
    widths = {**fixed, **widths}
    widths["Description"] = max(DESCRIPTION_MIN_PX, GRID_PX - ROW_MARKER_PX - sum(widths.values()))
    text, number = st.column_config.TextColumn, "right"
    config = {
        "Date": text("Date", width=widths["Date"]),
        "Account": text(
            "Account",
            width=widths["Account"],
            help="Account name and masked number; the account filter and the row details show the full label",
        ),  # fmt: skip
        "Type": text("Type", width=widths["Type"], help="The activity type in words; the details show SnapTrade's own"),
        "Symbol": text(
            "Symbol",
            width=widths["Symbol"],
            help="Ticker, or the option contract (underlying, expiry, strike, call/put)",
        ),  # fmt: skip
        "Quantity": text("Qty", width=widths["Quantity"], alignment=number, help="Units; empty for cash and fee rows"),
        "Price": text("Price", width=widths["Price"], alignment=number),
        "Amount": text(
            labels["Amount"], width=widths["Amount"], alignment=number, help="Net cash effect, in the row's currency"
        ),  # fmt: skip
        "Fee": text("Fee", width=widths["Fee"], alignment=number),
        "Currency": text("Ccy", width=widths.get("Currency"), help="Currency of Price, Amount and Fee"),
        "Description": text("Description", width=widths["Description"]),
    }
    return config, order, row_height


def _wrapped(df: pd.DataFrame, natural: dict[str, int], room: int) -> dict[str, int]:
    """Widths of the wrapped text columns: their caps, narrowed (never below their longest word) when long
    numbers leave the description less than its minimum, so the table still fits the window."""
    widths = {c: min(natural[c], WRAPPED_CAPS[c]) for c in TEXT_COLUMNS}
    floors = {c: min(widths[c], fit_px((w for v in df[c] for w in str(v).split()), c)) for c in TEXT_COLUMNS}
    for c in TEXT_COLUMNS:  # take the shortfall from each column in turn, down to its floor
        short = sum(widths.values()) - room
        if short <= 0:
            break
        widths[c] -= min(short, widths[c] - floors[c])
    return widths


def keep_selection(ids: list[int]) -> int | None:
    """The selected transaction for the rows about to be drawn (`ids`, in order), kept by id.

    The grid reports a selected *position*; it is read against the rows drawn last run, turned into a
    transaction id, and placed at that transaction's new position (or cleared when it left the view),
    writing the grid's selection back when the position changes."""
    state = st.session_state.get(TABLE_KEY)
    rows = list(state["selection"]["rows"]) if state else []
    shown = st.session_state.get(SHOWN_IDS_KEY)
    if shown is not None:
        selected = shown[rows[0]] if rows and rows[0] < len(shown) else None
    else:
        selected = st.session_state.get(SELECTED_KEY)
    if selected not in ids:
        selected = None
    wanted = [ids.index(selected)] if selected is not None else []
    if wanted != rows:
        st.session_state[TABLE_KEY] = {"selection": {"rows": wanted, "columns": [], "cells": []}}
    st.session_state[SHOWN_IDS_KEY] = list(ids)
    st.session_state[SELECTED_KEY] = selected
    return selected


def forget_selection() -> None:
    """No rows are drawn (nothing matches): whatever was selected has left the view."""
    st.session_state[SHOWN_IDS_KEY] = []
    st.session_state[SELECTED_KEY] = None


def draw(df: pd.DataFrame, currency: str | None) -> None:
    config, order, row_height = layout(df, currency)
    st.dataframe(df, key=TABLE_KEY, on_select="rerun", selection_mode="single-row", hide_index=True,
                 column_order=order, column_config=config, row_height=row_height)  # fmt: skip
