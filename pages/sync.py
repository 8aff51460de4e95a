"""Sync page: "Sync now" (all connections or one) within the per-user manual-sync limit, live
progress of running syncs polled from the database, the result summary, and recent history.

The run itself happens in the worker; this page only enqueues and reads `transaction_sync_log`,
so closing the tab never stops a sync.
"""

from __future__ import annotations

import streamlit as st

from core.jobs import queue as jobs
from core.reads import views
from core.storage.db import session_scope
from pages.components import SYNC_WATCH_KEY, fmt_duration, fmt_relative, fmt_time, plain, require_user, status_label

ALL = 0  # the "all connections" choice in the target picker
FLASH_KEY = "sync_flash"
HAD_ACTIVE_KEY = "sync_had_active"


def _sync_now(user_id: int, broken: list[str]) -> None:
    """`broken`: the connections that need reconnecting, which "All connections" leaves out (picked on its own, one
    is synced: its run asks SnapTrade whether the login was fixed at the broker)."""
    target = st.session_state.get("sync_target", ALL) or None
    full = bool(st.session_state.get("sync_full"))
    try:
        with session_scope() as s:
            runs = jobs.request_manual_sync(
                s, user_id=user_id, connection_id=target, full=full, skip_needs_reconnect=True
            )
            ids = [r.id for r in runs]
    except jobs.ManualSyncLimitExceeded as e:
        st.session_state[FLASH_KEY] = ("limit", str(e))
        return
    except jobs.NothingToSync as e:
        st.session_state[FLASH_KEY] = ("info", str(e))
        return
    st.session_state[SYNC_WATCH_KEY] = ids
    st.session_state["sync_full"] = False  # a whole-history re-read is for one press, not every later one
    n = len(ids)
    left_out = (
        f" {' and '.join(broken)} must be reconnected first (Connections → Reconnect)." if broken and not target else ""
    )
    st.session_state[FLASH_KEY] = (
        "ok",
        f"Sync queued for {n} connection{'s' if n != 1 else ''}; progress appears below.{left_out}",
    )


def _quota_text(quota: jobs.ManualSyncQuota, limit_said: bool = False) -> str:
    """How many presses are left, then the rule; `limit_said`: the warning above already says the limit is reached."""
    rule = (f"**Sync now** can be pressed {quota.limit} times per {quota.window_seconds} s (each press counts "
            "once, whether it covers one connection or all). The limit keeps your brokerage within SnapTrade's "
            "rate limits; scheduled syncs and broker-triggered updates do not count.")  # fmt: skip
    if limit_said:
        return rule
    if quota.remaining > 0:
        return f"You can start {quota.remaining} more manual sync{'s' if quota.remaining != 1 else ''} " \
               f"in the next {quota.window_seconds} s. {rule}"  # fmt: skip
    return f"You have used all {quota.limit} manual syncs for now; the next one is possible in " \
           f"{quota.reset_in_seconds} s. {rule}"  # fmt: skip


def _counts(row: views.RunRow) -> str:
    return (f"{row.fetched:,} fetched · {row.new:,} new · {row.updated:,} updated · {row.unchanged:,} unchanged · "
            f"{row.skipped:,} skipped")  # fmt: skip


def _progress(row: views.RunRow) -> None:
    with st.container(border=True):
        st.markdown(f"**{plain(row.brokerage_name)}** · {views.trigger_label(row.trigger, row.full_sync)}")
        # The label is built from the numbers the bar is drawn from (views.RunRow.progress_label).
        st.progress(row.percent, text=row.progress_label)
        st.caption(f"{_counts(row)} · started {fmt_relative(row.started_at) if row.started_at else 'not yet'}")


def _summary(row: views.RunRow) -> None:
    sentence = f"**{plain(row.brokerage_name)}** — {views.run_outcome_sentence(row)}"
    if row.duration_seconds is not None:
        sentence += f" ({fmt_duration(row.duration_seconds)})"
    if row.status == "completed":
        st.success(sentence, icon=":material/check_circle:")
    elif row.status in ("partial", "interrupted"):
        st.warning(sentence, icon=":material/warning:")
    else:
        st.error(sentence, icon=":material/error:")


@st.fragment(run_every="1s")
def _live(user_id: int) -> None:
    """Polls the database every second while the tab is open; the timer lives in the browser.
    The history is polled too, so its "Running" row never contradicts the progress bar above it."""
    with session_scope() as s:
        active = views.active_run_rows(s, user_id)
        watched = views.run_rows(s, user_id, run_ids=st.session_state.get(SYNC_WATCH_KEY, []))
        history = views.run_rows(s, user_id, limit=25)
    for row in active:
        _progress(row)
    finished = [r for r in watched if not r.is_active]
    for row in finished:
        _summary(row)
    if not active and not finished:
        st.caption("No sync is running.")
    _history(history)
    had_active = st.session_state.get(HAD_ACTIVE_KEY, False)
    st.session_state[HAD_ACTIVE_KEY] = bool(active)
    if had_active and not active:
        st.rerun(scope="app")  # refresh the quota (outside this fragment) once everything has finished


def _history(rows: list[views.RunRow]) -> None:
    st.subheader("Recent syncs", anchor=False)
    if not rows:
        st.caption("No syncs yet.")
        return
    # Widths fit a 1400 px window up to Duration; the counts (also in the summary above) may scroll.
    number = st.column_config.NumberColumn
    st.dataframe(
        [
            {
                "Started": fmt_time(r.started_at or r.queued_at),
                "Connection": r.brokerage_name,
                "Trigger": views.trigger_label(r.trigger, r.full_sync),
                "Status": status_label(r.status),
                "Result": views.run_result_brief(r),
                "Duration": fmt_duration(r.duration_seconds),
                "Fetched": r.fetched,
                "New": r.new,
                "Updated": r.updated,
                "Unchanged": r.unchanged,
                "Skipped": r.skipped,
            }  # fmt: skip
            for r in rows
        ],
        hide_index=True,
        column_config={
            "Started": st.column_config.TextColumn(width=140),
            "Connection": st.column_config.TextColumn(width=160),
            "Trigger": st.column_config.TextColumn(width=170),
            "Status": st.column_config.TextColumn(width=115),
            "Result": st.column_config.TextColumn(width=300, help="What the sync did (click a cell to read it all)"),
            "Duration": st.column_config.TextColumn(width=75, alignment="right"),
            **{c: number(width=75) for c in ("Fetched", "New", "Updated", "Unchanged", "Skipped")},
        },
    )


def render() -> None:
    st.title("Sync")
    user = require_user()
    with session_scope() as s:
        cards = views.connection_cards(s, user.user_id)
        quota = jobs.manual_sync_quota(s, user.user_id)
    if not cards:
        st.info("**No connection yet.** Connect a broker first; its history is imported automatically.",
                icon=":material/account_balance:")  # fmt: skip
        st.page_link("connections.py", label="Connect a broker", icon=":material/add_link:")
    else:
        broken = [c.brokerage_name for c in cards if c.status == "needs_reconnect"]
        names = {ALL: "All connections", **{c.connection_id: c.brokerage_name
                                            + (" (needs reconnect)" if c.status == "needs_reconnect" else "")
                                            for c in cards}}  # fmt: skip
        c1, c2 = st.columns([2, 1])
        c1.selectbox("What to sync", list(names), format_func=names.get, key="sync_target")
        c2.toggle("Re-read the whole history", key="sync_full",
                  help="Normally only recent weeks are fetched; a full re-import re-reads everything (slower).")  # fmt: skip
        st.button("Sync now", type="primary", icon=":material/sync:", key="sync_now",
                  on_click=_sync_now, args=(user.user_id, broken))  # fmt: skip
        flash = st.session_state.pop(FLASH_KEY, None)
        if flash:
            kind, message = flash
            {"ok": st.success, "limit": st.warning, "info": st.info}[kind](message)
        st.caption(_quota_text(quota, limit_said=bool(flash) and flash[0] == "limit" and quota.remaining <= 0))
    _live(user.user_id)


render()
