"""The browser benchmark's floor: Streamlit alone showing the Transactions table's title, caption and a 50-row
`st.dataframe` of its shape, nothing else; `?table=0` leaves the table out (the shell). docs/PERFORMANCE.md §5."""

import pandas as pd
import streamlit as st

st.set_page_config(page_title="floor", layout="wide")
rows = int(st.query_params.get("rows", "200000"))
st.title("Transactions")
st.caption(f"Rows 1–50 of {rows:,}")
if st.query_params.get("table", "1") != "0":
    frame = pd.DataFrame(
        {
            "Date": [f"2024-03-{i % 28 + 1:02d}" for i in range(50)],
            "Account": ["Questrade Margin ••1234"] * 50,
            "Type": ["BUY", "SELL", "DIVIDEND", "FEE", "CONTRIBUTION"] * 10,
            "Symbol": ["AAPL", "MSFT", "VTI", "SPY 2024-06-21 500 C", "XIC"] * 10,
            "Qty": [str(i % 90 + 1) for i in range(50)],
            "Price": [f"{100 + i * 1.37:.2f}" for i in range(50)],
            "Amount": [f"-{(i % 90 + 1) * (100 + i * 1.37):,.2f}" for i in range(50)],
            "Fee": ["4.95", "0", "0", "9.99", "0"] * 10,
            "Ccy": ["USD", "CAD"] * 25,
            "Description": [f"Bought {i % 90 + 1} shares at market, order {100000 + i}" for i in range(50)],
        }
    )
    st.dataframe(frame, key="table", on_select="rerun", selection_mode="single-row", hide_index=True)
