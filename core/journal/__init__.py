"""The trading journal: round trips, FIFO open lots, metrics and daily P&L built from stored activities.

`core.journal.engine` holds the pure computation (no database, no Streamlit, no SnapTrade).
"""
