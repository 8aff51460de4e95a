"""Where SnapTrade's connection portal sends the browser back (`/callback?status=…`).

This is a new browser session: the router re-identified the user by cookie, or we ask them to
log in here with the query params kept. The params are hints only; core.accounts.connections re-reads the
connections from SnapTrade before saying anything.
"""

from __future__ import annotations

import streamlit as st

from core.accounts import connections as conn_service
from core.accounts.attempts import record_callback
from core.snaptrade.client import SnapTradeError
from core.storage.db import session_scope
from pages import login, portal
from pages.components import SYNC_WATCH_KEY, current_user

HINT_KEYS = ("status", "connection_id", "authorizationId", "status_code", "error_code")
OUTCOME_KEY = "callback_outcome"


def _links(outcome: dict, user_id: int) -> None:
    """Where to go next: the queued import or sync, or straight back to the portal after a failure."""
    c1, c2, _ = st.columns([1, 1, 3])
    if outcome["status"] in ("error", "abandoned"):
        c1.button("Try again", key="callback_try_again", type="primary", icon=":material/refresh:",
                  on_click=portal.create_link, args=(user_id, None))  # fmt: skip
    elif outcome.get("runs"):
        label = "Follow the import" if outcome.get("change") == "new" else "Follow the sync"
        c1.page_link("sync.py", label=label, icon=":material/sync:")
    c2.page_link("connections.py", label="Your connections", icon=":material/account_balance:")
    if outcome["status"] in ("error", "abandoned"):
        portal.show_link(None)


def _show(outcome: dict) -> None:
    status, message = outcome["status"], outcome["message"]
    if status == "connected":
        st.success(message, icon=":material/check_circle:")
    elif status in ("error", "unchecked"):
        st.error(message, icon=":material/error:")
    elif status == "abandoned":
        st.warning(message, icon=":material/undo:")
    else:
        st.info(message, icon=":material/info:")


def render() -> None:
    params = {k: st.query_params.get(k) for k in HINT_KEYS if st.query_params.get(k)}
    user = current_user()
    if user is None:
        # Keep the query params: after logging in, the rerun lands here again with them intact.
        login.login_page(hint="Log in to finish connecting your brokerage.")
        return

    st.title("Back from your broker")
    if params:
        try:
            with session_scope() as s:
                out = conn_service.handle_portal_callback(s, user_id=user.user_id, params=params)
            outcome = {"status": out.status, "message": out.message, "runs": len(out.run_ids), "change": out.change}
            st.session_state[SYNC_WATCH_KEY] = list(out.run_ids)  # the Sync page then shows their result
            connection_id = out.connection_id
        except SnapTradeError as e:
            # Not a failed connect: only our check failed, so the portal is not offered again.
            outcome = {"status": "unchecked", "message": f"Could not check your connections with SnapTrade: {e}",
                       "runs": 0}  # fmt: skip
            connection_id = None
        with session_scope() as s:  # the attempt, as staff see it on the trader's timeline
            record_callback(s, user_id=user.user_id, params=params, status=outcome["status"],
                            message=outcome["message"], connection_id=connection_id,
                            error_code=params.get("error_code"))  # fmt: skip
        # Shown again on reruns after the URL is cleaned, so a refresh does not re-run the callback.
        st.session_state[OUTCOME_KEY] = outcome
        st.query_params.clear()
    outcome = st.session_state.get(OUTCOME_KEY)
    if outcome is None:
        st.info("Nothing to finish here: this page is where SnapTrade sends you back after connecting a broker.")
        st.page_link("connections.py", label="Your connections", icon=":material/account_balance:")
        return
    _show(outcome)
    if outcome.get("runs"):
        it = "it" if outcome["runs"] == 1 else f"all {outcome['runs']}"
        st.caption(f"The worker starts {it} within seconds; you can follow the progress on the Sync page.")
    _links(outcome, user.user_id)


render()
