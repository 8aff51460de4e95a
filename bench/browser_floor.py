"""The browser benchmark's floor, served by `streamlit run bench/browser_floor.py` in the same run: Streamlit alone
showing a title, the 'Rows 1–50 of N' caption and a 50-row `st.dataframe` shaped like the Transactions table, with
no database, login, sidebar or other widget. `?table=0` leaves the table out (the app shell).
"""

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
