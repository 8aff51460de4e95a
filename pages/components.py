"""Small shared widgets for every page: who is signed in, role checks, times in the user's
time zone, durations and status badges. Pages import from here instead of reading session_state.

Contract for page authors:
- `current_user()` -> `core.accounts.auth.SessionUser | None` (set by the router before any page runs);
  `require_user()` stops the page when nobody is signed in; `require_role("staff")` also checks the role
  (a registered page is reachable by URL, so privileged pages re-check it themselves).
- `fmt_time(dt)`, `fmt_when(dt)`, `fmt_relative(dt)`, `fmt_duration(s)`, `display_timezone()`.
- `status_badge(status)` for connection and run statuses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from core.accounts.auth import SessionUser

CURRENT_USER_KEY = "current_user"
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
        st.warning("Please log in first.")
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


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def fmt_time(dt: datetime | None, *, seconds: bool = False) -> str:
    """A stored UTC time as local wall-clock time with the zone abbreviation."""
    if dt is None:
        return "—"
    local = _aware(dt).astimezone(display_timezone())
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def fmt_date(dt: datetime | None) -> str:
    if dt is None:
        return "—"
    return _aware(dt).astimezone(display_timezone()).strftime("%Y-%m-%d")


def fmt_relative(dt: datetime | None, now: datetime | None = None) -> str:
    if dt is None:
        return "never"
    now = now or datetime.now(UTC)
    delta = (_aware(dt) - now).total_seconds()
    future, s = delta > 0, abs(delta)
    if s < 45:
        return "in a moment" if future else "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            n = round(s / size)
            text = f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def fmt_when(dt: datetime | None) -> str:
    """'2024-05-03 14:05 CEST (3 h ago)', or 'never'."""
    if dt is None:
        return "never"
    return f"{fmt_time(dt)} ({fmt_relative(dt)})"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def status_badge(status: str, *, help: str | None = None) -> None:
    label, color, icon = _BADGES.get(status, (status.replace("_", " ").capitalize(), "gray", None))
    st.badge(label, color=color, icon=icon, help=help)


def status_label(status: str) -> str:
    return _BADGES.get(status, (status.replace("_", " ").capitalize(), "", ""))[0]
