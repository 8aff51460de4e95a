"""Connections page: one card per brokerage connection (status in words, accounts, sync schedule),
connect a new broker, reconnect a broken one, disconnect with or without the imported history, and
recover when SnapTrade refuses the user's secret (reset it, or register again).

"Connect a broker" and "Reconnect" open SnapTrade's portal in one click (pages/portal.py).
"""

from __future__ import annotations

from decimal import Decimal

import streamlit as st

from core.accounts import connections as conn_service
from core.accounts import user_secrets
from core.reads import formatting as fmt
from core.reads import views
from core.snaptrade.client import SnapTradeError
from core.storage.db import session_scope
from pages import portal
from pages.components import fmt_date, fmt_when, plain, require_user, status_badge

SECRET_FLASH_KEY = "secret_flash"
CONFIRM_REGISTER_KEY = "confirm_register_again"
FREQUENCIES = {60: "Every hour", 6 * 60: "Every 6 hours", 12 * 60: "Every 12 hours", 24 * 60: "Daily",
               3 * 24 * 60: "Every 3 days", 7 * 24 * 60: "Weekly"}  # fmt: skip


def _money(value: Decimal | None, currency: str | None) -> str:
    return "—" if value is None else fmt.format_money(value, currency)


def _save_schedule(user_id: int, connection_id: int) -> None:
    enabled = st.session_state[f"auto_{connection_id}"]
    minutes = st.session_state[f"freq_{connection_id}"]
    try:
        with session_scope() as s:
            conn_service.set_auto_sync(s, user_id=user_id, connection_id=connection_id, enabled=enabled,
                                       frequency_minutes=minutes)  # fmt: skip
    except ValueError as e:
        st.session_state[f"schedule_error_{connection_id}"] = str(e)


def _disconnect(user_id: int, connection_id: int) -> None:
    keep = st.session_state.get(f"keep_{connection_id}", "Keep") == "Keep"
    try:
        with session_scope() as s:
            conn_service.disconnect_connection(s, user_id=user_id, connection_id=connection_id, keep_history=keep)
    except (SnapTradeError, ValueError) as e:
        st.session_state[f"disconnect_error_{connection_id}"] = str(e)
        return
    st.session_state.pop(f"confirm_{connection_id}", None)
    st.toast("Disconnected" + (" — imported history kept." if keep else " — imported history deleted."))


def _reconnect_call(card: views.ConnectionCard, user_id: int) -> None:
    """The first thing a broken card shows: what happened, since when, and the one button that fixes it."""
    since = f" since {fmt_date(card.disabled_at)}" if card.disabled_at else ""
    reason = fmt.clause(card.status_reason or "the brokerage login is no longer accepted")
    st.warning(f"**Needs reconnect{since}.** Reason: {reason}. Until you reconnect, no new transactions "
               "arrive and auto-sync is paused; your imported history stays.", icon=":material/link_off:")  # fmt: skip
    st.button("Reconnect", key=f"reconnect_{card.connection_id}", type="primary", icon=":material/link:",
              on_click=portal.create_link, args=(user_id, card.connection_id),
              help="Opens SnapTrade's portal, where you sign in to your brokerage again")  # fmt: skip
    portal.show_link(card.connection_id)


def _status_sentence(card: views.ConnectionCard) -> None:
    if card.status == "needs_reconnect":
        return  # _reconnect_call leads the card instead
    elif card.status == "error":
        st.error(f"**Error:** {card.error_message or card.status_reason or 'the last sync failed'}",
                 icon=":material/error:")  # fmt: skip
    elif card.status == "pending":
        st.info("Connecting: waiting for SnapTrade to confirm this connection.", icon=":material/hourglass_top:")
    elif card.status == "disconnected":
        st.caption(card.status_reason or "Disconnected.")


def _schedule(card: views.ConnectionCard, user_id: int) -> None:
    c1, c2 = st.columns(2)
    c1.toggle("Auto-sync", value=card.auto_sync_enabled, key=f"auto_{card.connection_id}",
              on_change=_save_schedule, args=(user_id, card.connection_id))  # fmt: skip
    options = sorted(set(FREQUENCIES) | {card.sync_frequency_minutes})
    c2.selectbox("Frequency", options, index=options.index(card.sync_frequency_minutes),
                 format_func=lambda m: FREQUENCIES.get(m) or views.frequency_label(m).capitalize(),
                 key=f"freq_{card.connection_id}", disabled=not card.auto_sync_enabled,
                 on_change=_save_schedule, args=(user_id, card.connection_id))  # fmt: skip
    error = st.session_state.pop(f"schedule_error_{card.connection_id}", None)
    if error:
        st.error(error)


def _recover(user_id: int, username: str, register: bool) -> None:
    """Button callback: SnapTrade's two ways back from a refused secret (the outcome says what happened)."""
    recover = user_secrets.register_again if register else user_secrets.reset_user_secret
    try:
        with session_scope() as s:
            outcome = recover(s, user_id=user_id, actor=username)
    except (SnapTradeError, ValueError) as e:
        st.session_state[SECRET_FLASH_KEY] = (False, str(e))
        return
    st.session_state[SECRET_FLASH_KEY] = (outcome.ok, outcome.message)
    st.session_state.pop(CONFIRM_REGISTER_KEY, None)


def _secret_attention(user_id: int, username: str) -> bool:
    """Leads the page while SnapTrade refuses the user's secret; True while it does."""
    flash = st.session_state.pop(SECRET_FLASH_KEY, None)
    if flash:
        (st.success if flash[0] else st.error)(flash[1])
    with session_scope() as s:
        status = user_secrets.secret_status(s, user_id)
    if status is None or not status.needs_attention:
        return False
    with st.container(border=True):
        st.error(f"**SnapTrade access needs attention since {fmt_date(status.since)}.** {status.reason}",
                 icon=":material/key_off:")  # fmt: skip
        st.markdown("**Reset the secret** asks SnapTrade for a new one and resumes your connections. If SnapTrade "
                    "refuses, **register again**: your connections close (imported history stays) and you connect "
                    "your brokerages again.")  # fmt: skip
        c1, c2, _ = st.columns([1, 1, 2])
        c1.button("Reset the secret", key="secret_reset", type="primary", icon=":material/key:",
                  on_click=_recover, args=(user_id, username, False))  # fmt: skip
        if c2.button("Register again…", key="secret_register", icon=":material/person_add:"):
            st.session_state[CONFIRM_REGISTER_KEY] = True
        if st.session_state.get(CONFIRM_REGISTER_KEY):
            st.warning("Registering again closes every connection; you then connect each brokerage again.")
            st.button("Yes, register again", key="secret_register_confirm", on_click=_recover,
                      args=(user_id, username, True))  # fmt: skip
    return True


def _card(card: views.ConnectionCard, user_id: int) -> None:
    with st.container(border=True):
        head, badge = st.columns([4, 1])
        head.subheader(plain(card.brokerage_name), anchor=False)
        with badge:
            status_badge(card.status)
        if card.status == "needs_reconnect":
            _reconnect_call(card, user_id)
        _status_sentence(card)
        if card.accounts:
            st.dataframe(
                [
                    {
                        "Account": a.name,
                        "Number": a.masked_number,
                        "Type": a.account_type or "—",
                        "Value": _money(a.total_value, a.currency),
                        "Cash": _money(a.cash_balance, a.currency),
                        "Balance as of": fmt_when(a.balance_updated_at),
                    }  # fmt: skip
                    for a in card.accounts
                ],
                hide_index=True,
            )
        else:
            st.caption("No accounts reported for this connection yet.")
        next_sync = card.next_sync_note or fmt_when(card.next_sync_at)
        st.markdown(f"Last sync: **{fmt_when(card.last_sync_at)}** · Last successful: "
                    f"**{fmt_when(card.last_successful_sync_at)}** · Next sync: **{next_sync}**")  # fmt: skip
        if card.active_run_id is not None:
            st.page_link("sync.py", label="A sync is running now — follow it on the Sync page",
                         icon=":material/sync:")  # fmt: skip
        _schedule(card, user_id)

        disconnect = st.button("Disconnect…", key=f"disconnect_{card.connection_id}", icon=":material/link_off:")
        if disconnect:
            st.session_state[f"confirm_{card.connection_id}"] = True
        if st.session_state.get(f"confirm_{card.connection_id}"):
            with st.container(border=True):
                st.markdown(f"**Disconnect {plain(card.brokerage_name)}?** SnapTrade stops reading this brokerage and "
                            "auto-sync ends. You can connect it again later.")  # fmt: skip
                st.radio("Imported transactions", ["Keep", "Delete"], key=f"keep_{card.connection_id}",
                         format_func={"Keep": "Keep my imported history", "Delete": "Delete my imported history"}.get,
                         horizontal=True)  # fmt: skip
                c1, c2, _ = st.columns([1, 1, 3])
                c1.button("Yes, disconnect", key=f"confirm_disconnect_{card.connection_id}", type="primary",
                          on_click=_disconnect, args=(user_id, card.connection_id))  # fmt: skip
                if c2.button("Cancel", key=f"cancel_disconnect_{card.connection_id}"):
                    st.session_state.pop(f"confirm_{card.connection_id}", None)
                    st.rerun()
        error = st.session_state.pop(f"disconnect_error_{card.connection_id}", None)
        if error:
            st.error(f"Could not disconnect: {error}")


def render() -> None:
    st.title("Connections")
    user = require_user()
    with session_scope() as s:
        cards = views.connection_cards(s, user.user_id, include_disconnected=True)
    live = [c for c in cards if c.status != "disconnected"]
    gone = [c for c in cards if c.status == "disconnected"]

    blocked = _secret_attention(user.user_id, user.username)
    st.button("Connect a broker", type="primary" if not live and not blocked else "secondary",
              icon=":material/add_link:", key="connect_new", on_click=portal.create_link, args=(user.user_id, None),
              disabled=blocked, help="Paused until SnapTrade access is repaired" if blocked else None)  # fmt: skip
    portal.show_link(None)

    if not live:
        st.info("**No connection yet.** Press **Connect a broker**: SnapTrade's portal opens, you sign in to "
                "your brokerage there, and your transaction history is imported when it brings you back.",
                icon=":material/account_balance:")  # fmt: skip
    for card in live:
        _card(card, user.user_id)
    if gone:
        with st.expander(f"Disconnected ({len(gone)})"):
            for card in gone:
                st.markdown(f"**{plain(card.brokerage_name)}** — {card.status_reason or 'disconnected'}")


render()
