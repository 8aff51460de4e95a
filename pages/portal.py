"""Opening SnapTrade's connection portal in one click, for Connections ("Connect a broker", "Reconnect")
and the callback page ("Try again").

A portal link expires after 5 minutes, so it is created when the button is pressed; the rerun that
follows sends this tab to it at once (a tiny in-page script), and shows the link as a fallback. The portal
returns to /callback, where the router re-identifies the user by cookie.
"""

from __future__ import annotations

import secrets
import time

import streamlit as st

from core.accounts import connections as conn_service
from core.settings import get_settings
from core.snaptrade.client import SnapTradeError
from core.storage.db import session_scope

PORTAL_LINK_KEY = "portal_link"  # {"url" | "error", "for": reconnect id or None, "at", "id"}
PORTAL_LINK_TTL = 5 * 60

# Runs in the page itself (no iframe), once per link: the same `id` is never followed twice.
_OPEN_JS = """
export default function(component) {
  const { data } = component;
  if (!data || !data.url || !data.id) return;
  const opened = (window.__tradistryPortalLinks = window.__tradistryPortalLinks || new Set());
  if (opened.has(data.id)) return;
  opened.add(data.id);
  window.location.assign(data.url);
}
"""
_open_in_this_tab = st.components.v2.component("tradistry_open_portal", js=_OPEN_JS)


def create_link(user_id: int, reconnect_id: int | None) -> None:
    """Button callback: ask SnapTrade for a fresh portal URL (a reconnect when `reconnect_id` is set),
    to be opened by the rerun this click starts."""
    redirect = get_settings().app_base_url.rstrip("/") + "/callback"
    link: dict = {"for": reconnect_id, "at": time.time(), "id": secrets.token_hex(6)}
    try:
        with session_scope() as s:
            link["url"] = conn_service.create_portal_link(s, user_id=user_id, reconnect_connection_id=reconnect_id,
                                                          redirect_url=redirect)  # fmt: skip
    except (SnapTradeError, ValueError) as e:
        link["error"] = str(e)
    st.session_state[PORTAL_LINK_KEY] = link


def show_link(reconnect_id: int | None) -> None:
    """Open the link created by the last click (once), or say why there is none; nothing when the link
    belongs to another button or has expired."""
    link = st.session_state.get(PORTAL_LINK_KEY)
    if not link or link.get("for") != reconnect_id or time.time() - link["at"] > PORTAL_LINK_TTL:
        return
    if "error" in link:
        st.error(f"Could not open the connection portal: {link['error']}", icon=":material/error:")
        return
    _open_in_this_tab(key=f"open_portal_{link['id']}", data={"url": link["url"], "id": link["id"]}, height=1)
    st.caption(f"Opening SnapTrade's portal… If nothing happens, [open it here]({link['url']}). When you finish, "
               "SnapTrade brings you back here.")  # fmt: skip
