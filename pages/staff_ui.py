"""Widgets the staff pages share: an action button that asks for confirmation before it runs (through
core.staff.actions, which checks the role again and writes the audit trail), the result of the
last action, the reconnect link and the support bundle it produced, the timeline table and page links.

Each confirmation carries a fresh idempotency key: a double click, or a resent rerun, acts once.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from core.accounts.audit import ACTION_LABELS, PermissionDenied
from core.reads import timeline as tl
from core.reads.support_bundle import bundle_file_name
from core.staff.actions import ActionRefused, perform
from core.storage.db import session_scope
from pages.components import current_user, fmt_relative, fmt_time

PENDING_KEY = "staff_pending_action"
RESULT_KEY = "staff_action_result"
LINK_KEY = "staff_reconnect_link"
BUNDLE_KEY = "staff_support_bundle"
NOTE_KEY = "staff_action_note"
CONNECTION_PAGE = "connection_detail.py"
USER_PAGE = "user_detail.py"


def ask(
    action: str, question: str, *, connection_id: int | None = None, needs_note: bool = False, **kwargs: Any
) -> None:
    """Button callback: remember the action and show its confirmation on the next run."""
    st.session_state[PENDING_KEY] = {"action": action, "question": question, "connection_id": connection_id,
                                     "needs_note": needs_note, "kwargs": kwargs, "key": secrets.token_hex(16)}  # fmt: skip


def action_button(label: str, action: str, question: str, *, key: str, connection_id: int | None = None,
                  help: str | None = None, disabled: bool = False, needs_note: bool = False, **kwargs: Any) -> None:  # fmt: skip
    st.button(label, key=key, help=help, disabled=disabled, on_click=ask, args=(action, question),
              kwargs={"connection_id": connection_id, "needs_note": needs_note, **kwargs})  # fmt: skip


def _confirm() -> None:
    pending = st.session_state.pop(PENDING_KEY, None)
    if pending is None:  # a second click on a confirmation already carried out
        return
    user = current_user()
    note = st.session_state.pop(NOTE_KEY, None) if pending["needs_note"] else None
    label = ACTION_LABELS.get(pending["action"], pending["action"])
    try:
        with session_scope() as session:
            result = perform(session, actor_user_id=user.user_id if user else None, action=pending["action"],
                             connection_id=pending["connection_id"], idempotency_key=pending["key"], note=note,
                             **pending["kwargs"])  # fmt: skip
    except (PermissionDenied, ActionRefused) as exc:  # not staff, or nothing to act on: nothing was done
        st.session_state[RESULT_KEY] = {"outcome": "failed", "text": f"{label}: {exc}"}
        return
    st.session_state[RESULT_KEY] = {"outcome": result.outcome, "text": f"{label}: {result.message}",
                                    "action_id": result.action_id}  # fmt: skip
    if result.link:
        st.session_state[LINK_KEY] = {"url": result.link, "expires_at": result.link_expires_at,
                                      "connection_id": pending["connection_id"]}  # fmt: skip
    if result.data is not None:
        st.session_state[BUNDLE_KEY] = {"data": result.data, "connection_id": pending["connection_id"],
                                        "file_name": bundle_file_name(pending["connection_id"])}  # fmt: skip


def _cancel() -> None:
    st.session_state.pop(PENDING_KEY, None)


def confirmation() -> None:
    """The pending action's question with Confirm and Cancel (nothing happens before Confirm)."""
    pending = st.session_state.get(PENDING_KEY)
    if pending is None:
        return
    with st.container(border=True):
        st.warning(pending["question"])
        if pending["needs_note"]:
            st.text_input("Note (required): why is it resolved?", key=NOTE_KEY, max_chars=500)
        c1, c2, _ = st.columns([1, 1, 4])
        c1.button("Confirm", key="staff_confirm", type="primary", on_click=_confirm)
        c2.button("Cancel", key="staff_cancel", on_click=_cancel)


def outcome_messages(connection_id: int | None = None) -> None:
    """The last action's outcome, and a reconnect link or support bundle it produced for this connection."""
    result = st.session_state.pop(RESULT_KEY, None)
    if result:
        show = {"done": st.success, "no_change": st.info}.get(result["outcome"], st.error)
        show(result["text"] + (f" (audit entry #{result['action_id']})" if result.get("action_id") else ""))
    link = st.session_state.get(LINK_KEY)
    if link and (connection_id is None or link["connection_id"] == connection_id):
        if link["expires_at"] <= datetime.now(UTC):
            st.session_state.pop(LINK_KEY, None)
            st.caption("The reconnect link expired; issue a new one if the trader still needs it.")
        else:
            with st.container(border=True):
                st.markdown(
                    "**Reconnect link for the trader** — only you see it. Send it to the trader; it works once."
                )
                st.code(link["url"], language=None, wrap_lines=True)
                st.caption(
                    f"Expires {fmt_time(link['expires_at'], seconds=True)} ({fmt_relative(link['expires_at'])})."
                )
    bundle = st.session_state.get(BUNDLE_KEY)
    if bundle and (connection_id is None or bundle["connection_id"] == connection_id):
        st.download_button("Download support bundle", bundle["data"], file_name=bundle["file_name"],
                           mime="application/zip", key="staff_bundle_download", on_click="ignore")  # fmt: skip


def timeline_table(entries: list[tl.TimelineEntry]) -> None:
    """The timeline as a table, newest first; run and issue entries link to their details."""
    if not entries:
        st.info("Nothing recorded for this filter.")
        return
    rows = [{"When": fmt_time(e.at, seconds=True), "Kind": tl.KIND_NAMES[e.kind], "⚠": "⚠" if e.needs_attention else "",
             "What": e.title, "Details": e.detail, "Link": _detail_link(e)} for e in entries]  # fmt: skip
    config = {"What": st.column_config.TextColumn(width="large"), "Details": st.column_config.TextColumn(width="large"),
              "⚠": st.column_config.TextColumn(width=30, help="Needs a person"),
              "Link": st.column_config.LinkColumn("Details", display_text="open", width=60)}  # fmt: skip
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config=config, key="staff_timeline")


def _detail_link(entry: tl.TimelineEntry) -> str | None:
    """The connection page opened on the entry's run or issue (a run's entry, an issue's, an action's)."""
    if entry.connection_id is None or not (entry.run_id or entry.issue_id):
        return None
    target = f"issue={entry.issue_id}" if entry.issue_id else f"run={entry.run_id}"
    return f"connection?id={entry.connection_id}&{target}"


def _page_link(page: str, url_path: str, label: str, icon: str, item_id: int) -> None:
    try:
        st.page_link(page, label=label, icon=icon, query_params={"id": str(item_id)})
    except StreamlitPageNotFoundError:  # the page script run on its own, without the router's navigation
        st.markdown(f"{icon} [{label}]({url_path}?id={item_id})")


def connection_link(connection_id: int, label: str | None = None) -> None:
    _page_link(CONNECTION_PAGE, "connection", label or f"Open connection #{connection_id}", "🔎", connection_id)


def user_link(user_id: int, username: str) -> None:
    _page_link(USER_PAGE, "staff-user", f"Trader {username}: all connections and attempts", "👤", user_id)


def query_int(name: str) -> int | None:
    value = st.query_params.get(name)
    return int(value) if value and str(value).isdigit() else None


def audit_table(actions: list) -> None:
    """The audit trail: who did what, when, on which connection, and what came of it."""
    if not actions:
        st.info("No staff action yet.")
        return
    st.dataframe(pd.DataFrame([{"When": fmt_time(a.created_at, seconds=True), "Staff": a.actor_username,
                                "Action": ACTION_LABELS.get(a.action, a.action), "Connection": a.connection_id,
                                "Outcome": tl.ACTION_OUTCOMES.get(a.outcome, a.outcome), "What happened": a.message or "",
                                "Note": a.note or ""} for a in actions]), hide_index=True)  # fmt: skip


def attempts_table(attempts: list[tl.AttemptLine], *, with_user: bool = False) -> None:
    """Passes through the connection portal: what SnapTrade said, what the callback said."""
    if not attempts:
        st.success("No connect attempt recorded.")
        return
    rows = [{"When": fmt_time(a.created_at, seconds=True), **({"Trader": a.username} if with_user else {}),
             "For": "reconnect #" + str(a.connection_id) if a.purpose == "reconnect" else "new connection",
             "Brokerage": a.broker or "", "Outcome": tl.ATTEMPT_OUTCOMES.get(a.outcome, a.outcome),
             "SnapTrade result": a.webhook_result or "", "Callback": (a.callback_status or "") +
             (f" ({a.error_code})" if a.error_code else ""), "What happened": a.message or "",
             "Link by staff": a.requested_by or ""} for a in attempts]  # fmt: skip
    st.dataframe(pd.DataFrame(rows), hide_index=True)
