"""Connection page (staff only): everything that happened to one connection, newest first, and the
actions that fix it, each confirmed and written to the audit trail. Reached from every Operations row that
names a connection (`/connection?id=N`); `&run=M` or `&issue=K` opens that run's or issue's details.

The router registers this page for staff only; it re-checks the role because a registered page is reachable by URL.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.reads import timeline as tl
from core.reads.formatting import clause, payload_json
from core.reads.views import frequency_label
from core.storage.db import session_scope
from pages import staff_ui as ui
from pages.components import fmt_duration, fmt_relative, fmt_time, fmt_when, require_role, status_badge

KINDS_KEY = "conn_kinds"


def _pick() -> None:
    st.title("Connection")
    st.info("Open a connection from Operations, or enter its number.")
    number = st.number_input("Connection number", min_value=1, step=1, value=None, key="conn_pick")
    if number:
        ui.connection_link(int(number))


def _header(c: tl.ConnectionSummary, runs: list[tl.RunLine]) -> None:
    st.title(f"Connection #{c.id} · {c.brokerage_name or 'Brokerage'}")
    st.button("Refresh", key="conn_refresh", help="Read everything again (a queued run may have finished)")
    st.caption(
        f"Trader {c.username} · SnapTrade authorization {c.authorization_id} · recorded {fmt_time(c.created_at)}"
    )
    ui.user_link(c.user_id, c.username)
    status_badge(c.status)
    if c.status_reason or c.error_message:
        st.markdown(f"**Why:** {c.status_reason or c.error_message}")
    tiles = st.columns(4)
    # Relative in the tile (a full time does not fit four across), the exact time in its help.
    tiles[0].metric(
        "Last successful sync", fmt_relative(c.last_successful_sync_at), help=fmt_when(c.last_successful_sync_at)
    )
    tiles[1].metric("Last sync", fmt_relative(c.last_sync_at), help=fmt_when(c.last_sync_at))
    tiles[2].metric("Auto-sync", frequency_label(c.sync_frequency_minutes) if c.auto_sync_enabled else "off")
    tiles[3].metric("Runs needing a person", sum(r.needs_attention for r in runs))


def _actions(c: tl.ConnectionSummary, runs: list[tl.RunLine], flagged: int) -> None:
    failing = next((r for r in runs if r.needs_attention), None)
    who = f"{c.brokerage_name} of {c.username}"
    retry_question = f"Retry the sync of {who}?" + (
        f" Run #{failing.id} {failing.outcome.lower()}: {clause(failing.error_message or 'no message')}. The new run resumes "
        "from its checkpoint." if failing else " A new run reads what is new since the last sync."
    ) + (" The connection needs reconnecting: the run fails again unless its login was fixed at the broker "
         "(Reconcile checks that first)." if c.status == "needs_reconnect" else "")  # fmt: skip
    connected = c.status != "disconnected"
    row1 = st.columns(4)
    with row1[0]:
        ui.action_button("Retry sync", "retry_sync", retry_question, key="conn_retry", connection_id=c.id,
                         run_id=failing.id if failing else None, disabled=not connected,
                         help="One new run; a failed or interrupted run is resumed from its checkpoint")  # fmt: skip
    with row1[1]:
        ui.action_button("Re-run from scratch", "full_resync", f"Re-read the whole history of {who}? This makes one "
                         "request per 1,000 activities of every account.", key="conn_full", connection_id=c.id,
                         disabled=not connected)  # fmt: skip
    with row1[2]:
        ui.action_button("Reconcile now", "reconcile", f"Ask SnapTrade now for {c.username}'s connections and "
                         "accounts, and record what changed?", key="conn_reconcile", connection_id=c.id)  # fmt: skip
    with row1[3]:
        ui.action_button(f"Re-process flagged webhooks ({flagged})", "reprocess_webhooks", f"Apply the {flagged} "
                         "flagged webhook event(s) of this connection again?", key="conn_reprocess", connection_id=c.id,
                         disabled=flagged == 0)  # fmt: skip
    row2 = st.columns(4)
    with row2[0]:
        ui.action_button("Reconnect link for the trader", "reconnect_link", f"Issue a new portal link for "
                         f"{c.username} to reconnect {c.brokerage_name}? It works once, expires in 5 minutes, and only "
                         "you will see it.", key="conn_link", connection_id=c.id, disabled=not connected)  # fmt: skip
    with row2[1]:
        if c.auto_sync_enabled or not connected:
            ui.action_button("Disable auto-sync", "disable_auto_sync", f"Stop scheduled syncs of {who}? Manual and "
                             "webhook syncs still run.", key="conn_autosync", connection_id=c.id,
                             disabled=not c.auto_sync_enabled)  # fmt: skip
        else:
            ui.action_button("Enable auto-sync", "enable_auto_sync", f"Schedule syncs of {who} again ("
                             f"{frequency_label(c.sync_frequency_minutes)})?", key="conn_autosync_on",
                             connection_id=c.id)  # fmt: skip
    with row2[2]:
        ui.action_button("Prepare support bundle", "support_bundle", "Prepare a zip of this connection's timeline, "
                         "runs, requests, issues and webhook verdicts (no transactions, no secrets)?",
                         key="conn_bundle", connection_id=c.id)  # fmt: skip


def _run_detail(run_id: int) -> None:
    with session_scope() as s:
        detail = tl.run_detail(s, run_id)
    if detail is None:
        st.warning(f"Run #{run_id} does not exist.")
        return
    r = detail.run
    st.markdown(f"**Run #{r.id}** · {r.outcome} · queued {fmt_time(r.queued_at, seconds=True)} · "
                f"{fmt_duration(r.duration_seconds)} · {r.api_requests} SnapTrade request(s)")  # fmt: skip
    if r.error_message:
        st.markdown(f"**Error{' ' + r.error_code if r.error_code else ''}:** {r.error_message}")
    if detail.error_details:
        st.json(payload_json(detail.error_details), expanded=False)
    if detail.account_breakdown:
        st.dataframe(pd.DataFrame(detail.account_breakdown), hide_index=True)
    if detail.requests:
        st.caption("Last SnapTrade requests (metadata only; quote the request id to SnapTrade support)")
        st.dataframe(pd.DataFrame([{**x, "at": fmt_time(x["at"], seconds=True)} for x in detail.requests]),
                     hide_index=True)  # fmt: skip


def _runs_tab(runs: list[tl.RunLine], selected: int | None) -> None:
    if not runs:
        st.info("No sync run yet.")
        return
    st.dataframe(pd.DataFrame([{"Run": r.id, "Trigger": r.trigger, "Outcome": r.outcome, "Queued": fmt_time(r.queued_at),
                                "Duration": fmt_duration(r.duration_seconds), "Fetched": r.fetched, "New": r.new,
                                "Requests": r.api_requests, "Error": r.error_message or ""} for r in runs]),
                 hide_index=True)  # fmt: skip
    ids = [r.id for r in runs]
    if selected is not None and selected not in ids:  # an address's run that is not this connection's
        st.warning(f"Run #{selected} is not a run of this connection; showing its latest run instead.")
    run_id = st.selectbox("Run details", ids, index=ids.index(selected) if selected in ids else 0, key="conn_run",
                          format_func=lambda i: f"#{i} · {next(r.outcome for r in runs if r.id == i)}")  # fmt: skip
    _run_detail(run_id)


def _issues_tab(issues: list, selected: int | None, connection_id: int) -> None:
    if not issues:
        st.success("No sync issue for this connection.")
        return
    st.dataframe(pd.DataFrame([{"Issue": i.id, "Kind": i.kind, "Reason": i.reason, "Run": i.run_id,
                                "Created": fmt_time(i.created_at), "Resolved by": i.resolved_by or "",
                                "Note": i.resolution_note or ""} for i in issues]), hide_index=True)  # fmt: skip
    by_id = {i.id: i for i in issues}
    ids = list(by_id)
    issue_id = st.selectbox("Issue details", ids, index=ids.index(selected) if selected in ids else 0, key="conn_issue",
                            format_func=lambda i: f"#{i} · {by_id[i].kind} · {by_id[i].reason}")  # fmt: skip
    issue = by_id[issue_id]
    st.json(payload_json(issue.raw_payload), expanded=False)
    if issue.resolved_at is None:
        ui.action_button("Mark resolved…", "resolve_issue", f"Mark issue #{issue.id} ({issue.reason}) resolved?",
                         key="conn_resolve", connection_id=connection_id, issue_id=issue.id, needs_note=True)  # fmt: skip


def _webhooks_tab(events: list) -> None:
    if not events:
        st.info("No webhook event names this connection.")
        return
    st.dataframe(pd.DataFrame([{"Received": fmt_time(e.received_at, seconds=True), "Event": e.event_type,
                                "Verdict": tl.WEBHOOK_VERDICTS.get(e.status, e.status), "Note": e.note or "",
                                "Event time": fmt_time(e.event_timestamp, seconds=True), "Webhook ID": e.webhook_id}
                               for e in events]), hide_index=True)  # fmt: skip


def _accounts_tab(accounts: list[tl.AccountStatus]) -> None:
    if not accounts:
        st.info("No account recorded for this connection yet.")
        return
    st.dataframe(pd.DataFrame([{"Account": a.label, "Active": "yes" if a.is_active else "removed",
                                "Last successful sync (ours)": fmt_time(a.last_synced_at),
                                "SnapTrade initial sync done": {True: "yes", False: "no"}.get(a.snaptrade_initial_sync_completed, "unknown"),
                                "SnapTrade last successful sync": str(a.snaptrade_last_successful_sync or "—"),
                                "First transaction": str(a.first_transaction_date or "—")} for a in accounts]),
                 hide_index=True)  # fmt: skip


def render() -> None:
    require_role("staff")
    connection_id = ui.query_int("id")
    if connection_id is None:
        _pick()
        return
    kinds = st.session_state.get(KINDS_KEY, list(tl.KINDS))
    with session_scope() as s:
        summary = tl.connection_summary(s, connection_id)
        if summary is None:
            st.title("Connection")
            st.error(f"Connection #{connection_id} does not exist.")
            return
        runs = tl.runs(s, connection_id=connection_id)
        events = tl.webhook_events(s, connection_id=connection_id)
        issues = tl.issues(s, connection_id=connection_id)
        accounts = tl.account_statuses(s, connection_id)
        actions = tl.staff_actions(s, connection_id=connection_id)
        entries = tl.connection_timeline(s, connection_id, kinds=kinds)
    _header(summary, runs)
    _actions(summary, runs, sum(e.status == "flagged" for e in events))
    ui.confirmation()
    ui.outcome_messages(connection_id)
    run_id, issue_id = ui.query_int("run"), ui.query_int("issue")
    tabs = st.tabs(["Timeline", f"Runs ({len(runs)})", f"Accounts ({len(accounts)})", f"Webhooks ({len(events)})",
                    f"Issues ({len(issues)})", f"Audit trail ({len(actions)})"],
                   default=f"Issues ({len(issues)})" if issue_id else (f"Runs ({len(runs)})" if run_id else None))  # fmt: skip
    with tabs[0]:
        st.multiselect("Show", list(tl.KINDS), default=list(tl.KINDS), format_func=tl.KIND_LABELS.get, key=KINDS_KEY)
        ui.timeline_table(entries)
    with tabs[1]:
        _runs_tab(runs, run_id)
    with tabs[2]:
        _accounts_tab(accounts)
    with tabs[3]:
        _webhooks_tab(events)
    with tabs[4]:
        _issues_tab(issues, issue_id, connection_id)
    with tabs[5]:
        ui.audit_table(actions)


render()
