"""Profile page: the signed-in user's display name and e-mail (with their length limits), a password
change (which signs out every other session and keeps this one), and where the session controls are.

A thin view: every change goes through core.accounts.auth, which says in words what it refuses.
"""

from __future__ import annotations

import streamlit as st

from core.accounts import auth
from core.storage.db import session_scope
from pages import login
from pages.components import require_user

FLASH_KEY = "profile_flash"


def _flash() -> None:
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        (st.success if flash[0] else st.error)(flash[1])


def _profile_form(user: auth.SessionUser) -> None:
    st.subheader("Profile", anchor=False)
    with st.form("profile_form"):
        name = st.text_input("Display name", value=user.name or "", key="profile_name", max_chars=auth.NAME_MAX_CHARS,
                             help=f"Shown in the sidebar; at most {auth.NAME_MAX_CHARS} characters.")  # fmt: skip
        email = st.text_input("E-mail", value=user.email or "", key="profile_email", max_chars=auth.EMAIL_MAX_CHARS)
        saved = st.form_submit_button("Save profile", type="primary", key="profile_save")
    if saved:
        try:
            with session_scope() as s:
                saved_user = auth.update_profile(s, user.username, name=name, email=email)
        except ValueError as e:
            st.error(str(e))
            return
        if (saved_user.name, saved_user.email) == (user.name, user.email):
            st.info("Nothing to save: the display name and e-mail are as they were.")
            return
        st.session_state[FLASH_KEY] = (True, "Profile saved.")
        st.rerun()


def _password_form(user: auth.SessionUser) -> None:
    st.subheader("Password", anchor=False)
    with st.form("password_form", clear_on_submit=True):
        current = st.text_input("Current password", type="password", key="pw_current", autocomplete="current-password")
        new = st.text_input("New password", type="password", key="pw_new", autocomplete="new-password",
                            help=f"At least {auth.MIN_PASSWORD_LENGTH} characters.")  # fmt: skip
        repeat = st.text_input("Repeat the new password", type="password", key="pw_repeat", autocomplete="new-password")
        changed = st.form_submit_button("Change password", key="pw_submit")
    if changed:
        if not current or not new:
            st.error("Enter your current password and a new one.")
            return
        if new != repeat:
            st.error("The two new passwords differ.")
            return
        try:
            with session_scope() as s:
                epoch = auth.change_password(s, user.username, current, new)
        except ValueError as e:
            st.error(str(e))
            return
        login.stay_signed_in(user.username, epoch)
        st.session_state[FLASH_KEY] = (True, "Password changed. Every other session of this account was signed out.")
        st.rerun()


def render() -> None:
    st.title("Profile")
    user = require_user()
    _flash()
    _profile_form(user)
    _password_form(user)
    st.caption("**Log out** (account menu in the sidebar) ends this browser's session. **Sign out everywhere** "
               "ends every session of this account, as a password change does.")  # fmt: skip


render()
