"""Trader page (staff only): one trader's connections, their connect attempts through the portal (failed
ones included: they never became a connection) and one timeline of everything that touched them
(`/staff-user?id=N`). The router registers it for staff only; it re-checks the role itself.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.reads import timeline as tl
from core.storage.db import session_scope
from pages import staff_ui as ui
from pages.components import fmt_when, require_role, status_label

KINDS_KEY = "user_kinds"


def _connections(connections: list[tl.ConnectionSummary]) -> None:
    if not connections:
        st.info("No connection recorded for this trader.")
        return
    st.dataframe(pd.DataFrame([{"Connection": c.id, "Brokerage": c.brokerage_name, "Status": status_label(c.status),
                                "Why": c.status_reason or c.error_message or "",
                                "Last successful sync": fmt_when(c.last_successful_sync_at),
                                "Open": f"connection?id={c.id}"} for c in connections]), hide_index=True,
                 column_config={"Open": st.column_config.LinkColumn(display_text="open")})  # fmt: skip
    for c in connections:
        ui.connection_link(c.id, f"Open connection #{c.id} · {c.brokerage_name} · {status_label(c.status)}")


def render() -> None:
    require_role("staff")
    user_id = ui.query_int("id")
    if user_id is None:
        st.title("Trader")
        st.info("Open a trader from Operations or from a connection page.")
        return
    kinds = st.session_state.get(KINDS_KEY, list(tl.KINDS))
    with session_scope() as s:
        connections = tl.user_connections(s, user_id)
        attempts = tl.attempts(s, user_id=user_id)
        flagged = tl.webhook_events(s, user_id=user_id, statuses=("flagged",))
        actions = tl.staff_actions(s, user_id=user_id)
        entries = tl.user_timeline(s, user_id, kinds=kinds)
        username = tl.username(s, user_id)
    if username is None:
        st.title("Trader")
        st.error(f"Trader #{user_id} does not exist.")
        return
    st.title(f"Trader {username}")
    failed = [a for a in attempts if a.outcome == "failed"]
    st.caption(f"{len(connections)} connection(s) · {len(failed)} failed connect attempt(s) · "
               f"{len(flagged)} flagged webhook event(s)")  # fmt: skip
    ui.action_button(f"Re-process flagged webhooks ({len(flagged)})", "reprocess_webhooks", f"Apply {username}'s "
                     f"{len(flagged)} flagged webhook event(s) again?", key="user_reprocess", user_id=user_id,
                     disabled=not flagged)  # fmt: skip
    ui.confirmation()
    ui.outcome_messages()
    tabs = st.tabs(["Timeline", f"Connections ({len(connections)})", f"Connect attempts ({len(attempts)})",
                    f"Audit trail ({len(actions)})"])  # fmt: skip
    with tabs[0]:
        st.multiselect("Show", list(tl.KINDS), default=list(tl.KINDS), format_func=tl.KIND_LABELS.get, key=KINDS_KEY)
        ui.timeline_table(entries)
    with tabs[1]:
        _connections(connections)
    with tabs[2]:
        ui.attempts_table(attempts)
    with tabs[3]:
        ui.audit_table(actions)


render()
