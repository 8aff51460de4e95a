"""Operations page (staff only): broken connections, failed runs, the sync-issues ledger, the webhook
log, failed connect attempts, the audit trail and health tiles across all users, and the recovery of users whose
SnapTrade secret is refused (reset it, or register again). Every row that names a connection or a trader links
to its page; actions (retry, resolve, re-process) are confirmed and audited.

The router registers this page for staff only; it re-checks the role because a registered page is reachable by URL.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.accounts import user_secrets
from core.reads import formatting as fmt
from core.reads import operations as q
from core.reads import timeline as tl
from core.reads.formatting import payload_json
from core.storage.db import session_scope
from pages import staff_ui as ui
from pages.components import display_timezone, require_role, status_label
from pages.reconciliation import render_reconciliation_tab

# Column headers staff read instead of the query's field names (one table, shared by every tab).
LABELS = {
    "id": "ID", "username": "User", "brokerage_name": "Brokerage", "status": "Status", "status_reason": "Reason",
    "error_message": "Error", "error_details": "Error details", "since": "Since",
    "last_successful_sync_at": "Last successful sync", "last_sync_at": "Last sync", "authorization_id": "Authorization",
    "connection_id": "Connection", "trigger": "Trigger", "queued_at": "Queued", "started_at": "Started",
    "completed_at": "Finished", "duration_seconds": "Duration", "attempts": "Attempts", "transactions_new": "New rows",
    "account_breakdown": "Per account", "account_id": "Account", "run_id": "Run", "kind": "Kind",
    "reason": "Reason", "snaptrade_activity_id": "SnapTrade activity", "matched_transaction_id": "Matched transaction",
    "created_at": "Created", "resolved_at": "Resolved", "resolved_by": "Resolved by", "received_at": "Received",
    "event_type": "Event", "event_timestamp": "Event time", "processed_at": "Processed", "note": "Note",
    "webhook_id": "Webhook ID", "user_id": "User ID", "flagged_connections": "Paused connections",
    "outcome": "Outcome", "open": "Open", "resolution_note": "Note",
}  # fmt: skip
WIDTHS = {"id": 60, "status_reason": "large", "error_message": "large", "reason": "large", "note": "medium",
          "outcome": "medium"}  # fmt: skip
HIDDEN = ("user_id", "connection_id", "superseded_by", "retried_by")  # used for links and wording, not shown as columns


def _require_staff() -> str:
    return require_role("staff").username


def _localize(df: pd.DataFrame, columns: tuple[str, ...], tz_name: str | None) -> pd.DataFrame:
    """Stored UTC times as text in the viewer's zone; JSON columns as compact text for the grid;
    statuses and durations in words; a missing value as an empty cell, never the text "None"."""
    out = df.copy()
    for col in columns:
        if col in out:
            out[col] = [fmt.format_timestamp(v, tz_name) if v is not None else "" for v in out[col]]
    for col in ("error_details", "account_breakdown"):
        if col in out:
            out[col] = [payload_json(v) if v is not None else "" for v in out[col]]
    if "status" in out:
        out["status"] = [status_label(v) if isinstance(v, str) else "" for v in out["status"]]
    if "duration_seconds" in out:
        out["duration_seconds"] = ["" if pd.isna(v) else fmt.format_duration(v) for v in out["duration_seconds"]]
    for col in out.columns:
        if out[col].dtype == object or out[col].isna().any():
            out[col] = [_cell(v) for v in out[col]]
    return out


def _cell(value: Any) -> Any:
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)  # an id column that held a NULL became float: show 12, not 12.0
    return value


def _grid(df: pd.DataFrame, first: tuple[str, ...] = ()) -> None:
    """A read-only table with human column headers; `first` are the columns staff read first. An `open`
    column holds the address of the row's connection page."""
    df = df.drop(columns=[c for c in HIDDEN if c in df.columns])
    config = {c: st.column_config.Column(LABELS.get(c, c.replace("_", " ").capitalize()), width=WIDTHS.get(c))
              for c in df.columns}  # fmt: skip
    if "open" in df.columns:
        config["open"] = st.column_config.LinkColumn("Open", display_text="open", width=60)
    order = [c for c in first if c in df.columns] + [c for c in df.columns if c not in first]
    st.dataframe(df, hide_index=True, column_config=config, column_order=order)


def _with_links(df: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """An `open` column: the address of each row's connection page (before _localize blanks missing ids)."""
    out = df.copy()
    out["open"] = [f"connection?id={int(v)}" if not pd.isna(v) else None for v in out[id_column]]
    return out


def _optional_int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _recover(user_id: int, register: bool, staff: str) -> None:
    recover = user_secrets.register_again if register else user_secrets.reset_user_secret
    try:
        with session_scope() as session:
            outcome = recover(session, user_id=user_id, actor=f"staff:{staff}")
        st.session_state[ui.RESULT_KEY] = {"outcome": "done" if outcome.ok else "failed",
                                           "text": f"User {user_id}: {outcome.message}"}  # fmt: skip
    except Exception as exc:  # a page shows the domain message instead of a trace
        st.session_state[ui.RESULT_KEY] = {"outcome": "failed", "text": f"Recovery of user {user_id} failed: {exc}"}


# --- sections


def _health(health: q.HealthSummary) -> None:
    # Two rows of four: six tiles in one row cut off labels and values like "1 h 12 min".
    rate = "—" if health.success_rate_24h is None else f"{health.success_rate_24h:.0%}"
    day = st.columns(4)
    day[0].metric(
        "Sync success (24 h)", rate, help=f"{health.completed_24h} of {health.runs_24h} finished runs completed"
    )
    day[1].metric("Finished runs (24 h)", health.runs_24h)
    # format_duration keeps a decimal under a minute: sub-second runs read "0.2 s", not "0 s".
    day[2].metric("Run duration p50", fmt.format_duration(health.p50_duration_seconds), help="Median of the last 24 h")
    day[3].metric("Run duration p95", fmt.format_duration(health.p95_duration_seconds),
                  help="95 % of the last 24 h's runs were at least this fast")  # fmt: skip
    now = st.columns(4)
    now[0].metric("Active connections", health.active_connections)
    now[1].metric("Need attention", health.attention_connections,
                  help="Connections that need a person: a reconnect, an error, or a failed run that no later run "
                  "completed and none is retrying, across all users")  # fmt: skip
    now[2].metric("Queue depth", health.queue_depth, help=f"{health.running} running")
    now[3].metric("Oldest queued job", fmt.format_duration(health.oldest_queued_age_seconds))
    if health.errors_by_code:
        codes = ", ".join(f"{code}: {n}" for code, n in health.errors_by_code.items())
        st.caption(f"API errors by code (24 h): {codes}")


def _connections(df: pd.DataFrame, tz_name: str | None) -> None:
    if df.empty:
        st.success("No connection needs a reconnect or is in error.")
        return
    _grid(_localize(_with_links(df, "id"), ("since", "last_successful_sync_at", "last_sync_at"), tz_name),
          first=("id", "username", "brokerage_name", "status", "since", "status_reason", "error_message"))  # fmt: skip
    by_id = {int(r["id"]): r for r in df.to_dict("records")}
    connection_id = st.selectbox("Connection", list(by_id), key="ops_connection", format_func=lambda i: f"#{i} · "
                                 f"{by_id[i]['brokerage_name']} · {by_id[i]['username']}")  # fmt: skip
    ui.connection_link(connection_id, f"Open connection #{connection_id}: timeline and actions")


def _refused_secrets(users: list[user_secrets.SecretStatus], staff: str, tz_name: str | None) -> None:
    """Users whose SnapTrade secret is refused (error 1083): nothing of theirs syncs until one of these runs."""
    if not users:
        return
    st.markdown(f"**SnapTrade refuses the secret of {len(users)} user(s)**: reset it; if SnapTrade refuses the "
                "reset too, register the user again (their connections close and they reconnect).")  # fmt: skip
    rows = [{"user_id": u.user_id, "username": u.username, "since": u.since, "status_reason": u.reason,
             "flagged_connections": u.flagged_connections} for u in users]  # fmt: skip
    _grid(_localize(pd.DataFrame(rows), ("since",), tz_name))
    by_id = {u.user_id: u for u in users}
    user_id = st.selectbox(
        "User", list(by_id), format_func=lambda i: f"{by_id[i].username} (#{i})", key="ops_secret_user"
    )
    c1, c2 = st.columns(2)
    c1.button("Reset secret", key="ops_secret_reset", on_click=_recover, args=(user_id, False, staff),
              icon=":material/key:", help="Ask SnapTrade for a new secret (resetUserSecret) and resume")  # fmt: skip
    sure = c2.checkbox("Register again: closes this user's connections", key="ops_secret_confirm")
    c2.button("Register again", key="ops_secret_register", on_click=_recover, args=(user_id, True, staff),
              disabled=not sure, icon=":material/person_add:")  # fmt: skip


def _runs(df: pd.DataFrame, tz_name: str | None) -> None:
    if df.empty:
        st.success("No failed, partial or interrupted run needs a person.")
        return
    df = df.assign(outcome=[tl.run_outcome(s, _optional_int(sup), _optional_int(retry))
                            for s, sup, retry in zip(df["status"], df["superseded_by"], df["retried_by"], strict=True)])  # fmt: skip
    _grid(_localize(_with_links(df, "connection_id"), ("queued_at", "started_at", "completed_at"), tz_name),
          first=("id", "username", "brokerage_name", "outcome", "queued_at", "error_message"))  # fmt: skip
    by_id = {int(r["id"]): r for r in df.to_dict("records")}
    run_id = st.selectbox("Run", list(by_id), format_func=lambda i: f"#{i} · {by_id[i]['outcome']} · "
                          f"{by_id[i]['username']}", key="ops_run")  # fmt: skip
    run = by_id[run_id]
    st.markdown(f"**Error:** {run['error_message'] or '—'}")
    if run["error_details"]:
        st.json(payload_json(run["error_details"]), expanded=False)
    if run["account_breakdown"]:
        st.markdown("**Per-account breakdown**")
        _grid(_localize(pd.DataFrame(run["account_breakdown"]), (), tz_name))
    connection_id = _optional_int(run["connection_id"])
    if connection_id is None:
        st.caption("This run's connection no longer exists: there is nothing to retry.")
        return
    c1, c2 = st.columns([1, 3])
    with c1:
        # One retry (the old "requeue" merged in): a new run, resuming this one's checkpoint when it has one.
        ui.action_button("Retry sync", "retry_sync", f"Retry the sync of {run['brokerage_name']} for {run['username']}? "
                         f"Run #{run_id} {run['outcome'].lower()}; the new run resumes from its checkpoint.",
                         key="ops_retry", connection_id=connection_id, run_id=run_id,
                         help="Queue a new run for the same connection, resuming this one")  # fmt: skip
    with c2:
        ui.connection_link(connection_id, f"Open connection #{connection_id}: timeline and actions")


def _issues(tz_name: str | None) -> None:
    unresolved_only = st.toggle("Unresolved only", value=True, key="ops_unresolved")
    with session_scope() as session:
        df = q.sync_issues(session, unresolved_only=unresolved_only)
    if df.empty:
        st.success("No unresolved sync issues." if unresolved_only else "The issues ledger is empty.")
        return
    _grid(
        _localize(
            _with_links(df.drop(columns=["raw_payload"]), "connection_id"), ("created_at", "resolved_at"), tz_name
        )
    )
    by_id = {int(r["id"]): r for r in df.to_dict("records")}
    issue_id = st.selectbox("Issue", list(by_id), format_func=lambda i: f"#{i} · {by_id[i]['kind']} · "
                            f"{by_id[i]['reason']}", key="ops_issue")  # fmt: skip
    st.json(payload_json(by_id[issue_id]["raw_payload"]), expanded=False)
    if by_id[issue_id]["resolved_at"] is None:
        ui.action_button("Mark resolved…", "resolve_issue", f"Mark issue #{issue_id} ({by_id[issue_id]['reason']}) "
                         "resolved?", key="ops_resolve", issue_id=issue_id, needs_note=True)  # fmt: skip
    if _optional_int(by_id[issue_id]["connection_id"]) is not None:
        ui.connection_link(int(by_id[issue_id]["connection_id"]))
    if _optional_int(by_id[issue_id]["user_id"]) is not None:
        ui.user_link(int(by_id[issue_id]["user_id"]), by_id[issue_id]["username"])


def _webhooks(tz_name: str | None) -> None:
    status = st.selectbox("Status", ["", "received", "processed", "ignored", "pending", "flagged"], key="ops_wh_status",
                          format_func=lambda s: s or "All")  # fmt: skip
    if status == "pending":
        st.caption("Pending: the event's connection is not recorded yet (SnapTrade's webhooks arrive before the "
                   "portal's callback); it takes effect when the callback or a reconcile records it.")  # fmt: skip
    with session_scope() as session:
        df = q.webhook_log(session, status=status or None)
    if df.empty:
        st.info("No webhook events received.")
        return
    _grid(_localize(_with_links(df.drop(columns=["payload"]), "connection_id"),
                    ("received_at", "event_timestamp", "processed_at"), tz_name))  # fmt: skip
    by_id: dict[int, Any] = {int(r["id"]): r for r in df.to_dict("records")}
    event_id = st.selectbox("Event", list(by_id), format_func=lambda i: f"#{i} · {by_id[i]['event_type']} · "
                            f"{by_id[i]['status']}", key="ops_wh_event")  # fmt: skip
    event = by_id[event_id]
    st.json(payload_json(event["payload"]), expanded=False)
    if event["status"] == "flagged":
        ui.action_button("Re-process this event", "reprocess_webhooks", f"Apply {event['event_type']} (#{event_id}) "
                         "again?", key="ops_wh_reprocess", event_ids=[event_id], user_id=_optional_int(event["user_id"]))  # fmt: skip
    if _optional_int(event["connection_id"]) is not None:
        ui.connection_link(int(event["connection_id"]))
    if _optional_int(event["user_id"]) is not None:
        ui.user_link(int(event["user_id"]), event["username"])


def render() -> None:
    staff = _require_staff()
    st.title("Operations")
    tz_name = display_timezone().key
    with session_scope() as session:
        health = q.health_summary(session)
        connections = q.connections_needing_attention(session)
        runs = q.problem_runs(session)
        refused = user_secrets.users_needing_attention(session)
        failed_attempts = tl.failed_attempts(session)
        actions = tl.staff_actions(session, limit=200)
    _health(health)
    ui.confirmation()
    ui.outcome_messages()
    tabs = st.tabs([f"Connections ({len(connections)})", f"Runs ({len(runs)})", "Sync issues", "Webhooks",
                    f"Failed attempts ({len(failed_attempts)})", "Audit trail", "Reconciliation"])  # fmt: skip
    with tabs[0]:
        _connections(connections, tz_name)
        _refused_secrets(refused, staff, tz_name)
    with tabs[1]:
        _runs(runs, tz_name)
    with tabs[2]:
        _issues(tz_name)
    with tabs[3]:
        _webhooks(tz_name)
    with tabs[4]:
        st.caption("Connect attempts that failed in the portal: most never became a connection, so only here "
                   "and on the trader's page.")  # fmt: skip
        ui.attempts_table(failed_attempts, with_user=True)
        traders = {a.user_id: a.username for a in failed_attempts}
        if traders:
            user_id = st.selectbox("Trader", list(traders), format_func=traders.get, key="ops_attempt_user")
            ui.user_link(user_id, traders[user_id])
    with tabs[5]:
        ui.audit_table(actions)
    with tabs[6]:
        render_reconciliation_tab()


render()
