"""Small shared widgets for every page: who is signed in, role checks, times in the user's
time zone, durations and status badges. Pages import from here instead of reading session_state.

Contract for page authors:
- `current_user()` -> `core.accounts.auth.SessionUser | None` (set by the router before any page runs);
  `require_user()` stops the page when nobody is signed in; `require_role("staff")` also checks the role
  (a registered page is reachable by URL, so privileged pages re-check it themselves).
- `fmt_time(dt)`, `fmt_when(dt)`, `fmt_relative(dt)`, `fmt_duration(s)`, `display_timezone()`.
- `status_badge(status)` for connection and run statuses.
- `plain(text)`: text someone else chose (a display name, a broker's name) for a Markdown label or body, shown as typed.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from core.accounts.auth import SessionUser
from core.reads import formatting as fmt

CURRENT_USER_KEY = "current_user"
# Every ASCII punctuation character CommonMark lets a backslash escape; Streamlit's colours (:red[…]), icons and
# links all start with one of them.
_MARKDOWN_ACTIVE = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
# Run ids whose result the Sync page summarises (set by "Sync now" and by the portal callback).
SYNC_WATCH_KEY = "sync_watch"

# Connection statuses and run statuses share one palette so "red" always means "needs you".
_BADGES: dict[str, tuple[str, str, str]] = {
    "active": ("Active", "green", ":material/check_circle:"),
    "pending": ("Connecting", "blue", ":material/hourglass_top:"),
    "needs_reconnect": ("Needs reconnect", "orange", ":material/link_off:"),
    "error": ("Error", "red", ":material/error:"),
    "disconnected": ("Disconnected", "gray", ":material/power_off:"),
    "queued": ("Waiting", "blue", ":material/schedule:"),
    "running": ("Running", "blue", ":material/sync:"),
    "completed": ("Completed", "green", ":material/check_circle:"),
    "partial": ("Partly completed", "orange", ":material/warning:"),
    "failed": ("Failed", "red", ":material/error:"),
    "interrupted": ("Interrupted", "gray", ":material/pause_circle:"),
}


def current_user() -> SessionUser | None:
    return st.session_state.get(CURRENT_USER_KEY)


def require_user() -> SessionUser:
    user = current_user()
    if user is None:
        st.info("Please sign in to see this page.")
        st.stop()
    return user


def require_role(*roles: str) -> SessionUser:
    """Stop the page unless the signed-in user has one of `roles` (defence in depth behind navigation)."""
    user = require_user()
    if user.role not in roles:
        st.error("Access denied: this page is for staff only.", icon=":material/block:")
        st.stop()
    return user


def display_timezone() -> ZoneInfo:
    """The user's saved zone, else the browser's, else UTC."""
    user = current_user()
    for name in ((user.timezone if user else None), st.context.timezone):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _tz_name() -> str:
    return display_timezone().key


def fmt_time(dt: datetime | None, *, seconds: bool = False) -> str:
    """A stored UTC time as local wall-clock time with the zone abbreviation."""
    return fmt.format_timestamp(dt, _tz_name(), seconds=seconds) or "—"


def fmt_date(dt: datetime | None) -> str:
    return fmt.format_date(dt, _tz_name()) or "—"


def fmt_relative(dt: datetime | None, now: datetime | None = None) -> str:
    return fmt.format_relative(dt, now)


def fmt_when(dt: datetime | None) -> str:
    """'2024-05-03 14:05 CEST (3 h ago)', or 'never'."""
    return fmt.format_when(dt, _tz_name())


def fmt_duration(seconds: float | None) -> str:
    return fmt.format_duration(seconds)


def status_badge(status: str, *, help: str | None = None) -> None:
    label, color, icon = _BADGES.get(status, (status.replace("_", " ").capitalize(), "gray", None))
    st.badge(label, color=color, icon=icon, help=help)


def status_label(status: str) -> str:
    return _BADGES.get(status, (status.replace("_", " ").capitalize(), "", ""))[0]


def plain(text: str) -> str:
    """`text` for a Markdown label or body with its Markdown shown as typed (`**x**` is not bold, `[y](z)` no link).
    In a body Streamlit still makes a bare web address a link: text anyone can type goes through `st.text` there."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", text).replace("\n", " ")
