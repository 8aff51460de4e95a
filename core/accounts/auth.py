"""Dashboard accounts: bcrypt passwords, a sign-in back-off (a growing delay per account, kept in the
database, and a failure limit per client), per-user session epochs that revoke every cookie and session
on "sign out everywhere" or a password change, and per-login ids that "log out" revokes.

No streamlit here: the login page and the cookie live in `pages/login.py` and call these functions.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import zoneinfo
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import bcrypt
import jwt
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.logs import log_event
from core.settings import get_settings
from core.storage.models import USER_ROLES, AppUser, utcnow

log = logging.getLogger("tradistry.auth")

BCRYPT_COST = 12
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_BYTES = 72  # bcrypt 5 refuses longer input instead of silently truncating it
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")
# Free-text profile fields: long enough for any real name or address, short enough for a sidebar and a table.
NAME_MAX_CHARS = 80
EMAIL_MAX_CHARS = 254  # the longest address SMTP can deliver (RFC 5321)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

# Sandbox-only accounts, shown on the login page so a newcomer can look around at once.
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("demo", "demo-trader-2024", "trader"),
    ("staff", "demo-staff-2024", "staff"),
)

# Verified against when the username is unknown, so both cases cost one bcrypt check
# and response time does not reveal which usernames exist.
_DUMMY_HASH = bcrypt.hashpw(b"not-a-real-password", bcrypt.gensalt(BCRYPT_COST))

# The one answer to every refused sign-in (unknown name, wrong password, slowed or throttled attempt), so
# the answer never tells whether a username exists or whether guessing has been noticed.
INVALID_CREDENTIALS = "Incorrect username or password."


@dataclass(frozen=True)
class AuthResult:
    """The outcome of one login attempt; `message` is safe to show as is."""

    ok: bool
    message: str
    username: str | None = None
    user_id: int | None = None
    role: str | None = None
    name: str | None = None
    session_epoch: int | None = None
    delayed_seconds: float = 0.0  # how long the answer was held back (the account's back-off)
    throttled: bool = False  # refused unchecked: this client failed too often lately


@dataclass(frozen=True)
class SessionUser:
    """What a browser session needs to know about its signed-in user, re-read on every run."""

    user_id: int
    username: str
    role: str
    name: str | None
    email: str | None
    session_epoch: int
    is_active: bool
    timezone: str | None
    login_id: str | None = None  # the sign-in a re-login cookie belongs to ("log out" revokes it)

    @property
    def display_name(self) -> str:
        return self.name or self.username


def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


def validate_username(username: str) -> str:
    u = normalize_username(username)
    if not USERNAME_RE.match(u):
        raise ValueError(
            "Usernames are 3 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    return u


def validate_password(password: str) -> None:
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"Passwords can be at most {MAX_PASSWORD_BYTES} bytes long.")
    if not password.strip():
        raise ValueError("A password cannot be only spaces.")


def clean_display_name(name: str | None) -> str | None:
    """A display name as stored: spaces collapsed, at most NAME_MAX_CHARS, no control characters; None if empty."""
    name = " ".join((name or "").split())
    if len(name) > NAME_MAX_CHARS:
        raise ValueError(f"Names can be at most {NAME_MAX_CHARS} characters; this one has {len(name):,}.")
    if _CONTROL_CHARS.search(name):
        raise ValueError("Names cannot contain control characters.")
    return name or None


def clean_email(email: str | None) -> str | None:
    """An e-mail address as stored (at most EMAIL_MAX_CHARS), or None if empty."""
    email = (email or "").strip()
    if len(email) > EMAIL_MAX_CHARS:
        raise ValueError(f"E-mail addresses can be at most {EMAIL_MAX_CHARS} characters; this one has {len(email):,}.")
    if email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        raise ValueError("That e-mail address does not look valid.")
    return email or None


def hash_password(password: str) -> str:
    validate_password(password)
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def verify_password(password: str, password_hash: str | bytes) -> bool:
    raw = password_hash.encode() if isinstance(password_hash, str) else password_hash
    try:
        return bcrypt.checkpw((password or "").encode(), raw)
    except ValueError:  # over 72 bytes or a malformed hash: a failed attempt, not a crash
        return False


def get_user(session: Session, username: str) -> AppUser | None:
    return session.exec(select(AppUser).where(AppUser.username == normalize_username(username))).first()


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str = "trader",
    email: str | None = None,
    name: str | None = None,
) -> AppUser:
    """Create a dashboard account; ValueError with a user-presentable message when input is refused."""
    username = validate_username(username)
    validate_password(password)
    if role not in USER_ROLES:
        raise ValueError(f"Role must be one of: {', '.join(USER_ROLES)}.")
    email = clean_email(email)
    name = clean_display_name(name)
    if get_user(session, username) is not None:
        raise ValueError(f"The username '{username}' is already taken.")
    user = AppUser(username=username, password_hash=hash_password(password), role=role, email=email, name=name)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:  # a concurrent sign-up won the unique index
        session.rollback()
        raise ValueError(f"The username '{username}' is already taken.") from None
    session.refresh(user)
    return user


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class _FailureLog:
    """Recent failure times per key (a client address, or a name no account has), in this process.

    Bounded: the oldest keys are dropped first, so a flood of random keys cannot grow it without end."""

    def __init__(self, max_keys: int = 10_000):
        self._times: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def count(self, key: str, now: float, window: float) -> int:
        with self._lock:
            times = self._times.get(key)
            while times and times[0] <= now - window:
                times.popleft()
            return len(times) if times else 0

    def add(self, key: str, now: float) -> None:
        with self._lock:
            self._times.setdefault(key, deque(maxlen=1000)).append(now)
            self._times.move_to_end(key)
            while len(self._times) > self._max_keys:
                self._times.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


_client_failures = _FailureLog()
_unknown_name_failures = _FailureLog()


def reset_login_throttle() -> None:
    """Forget the in-memory failure counts (tests; an operator after a false alarm)."""
    _client_failures.clear()
    _unknown_name_failures.clear()


def backoff_seconds(failures: int) -> float:
    """How long an account's next answer is held back after `failures` recent failures: nothing for the
    first LOGIN_FREE_FAILURES, then 1 s, doubling up to LOGIN_DELAY_MAX_SECONDS. The owner's right password
    waits the same few seconds and then signs in: there is no lock a stranger could trigger."""
    settings = get_settings()
    beyond = failures - settings.login_free_failures
    if beyond < 0:
        return 0.0
    return float(min(settings.login_delay_max_seconds, 2.0 ** min(beyond, 16)))


def _account_failures(user: AppUser, now: datetime, window: timedelta) -> int:
    start = _aware(user.failed_login_window_start)
    return user.failed_login_count if start is not None and now - start < window else 0


def authenticate(
    session: Session,
    username: str,
    password: str,
    now: datetime | None = None,
    *,
    client: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> AuthResult:
    """`_check_password`, and one log event for the outcome (auth.login, auth.failure, auth.throttled). The
    typed username is logged only when it names an account: people type passwords into that field."""
    result = _check_password(session, username, password, now or utcnow(), client, sleep)
    user = get_user(session, username) if not result.ok else None
    user_id = result.user_id if result.ok else (user.id if user else None)
    event = "auth.login" if result.ok else ("auth.throttled" if result.throttled else "auth.failure")
    log_event(log, event, "sign-in " + ("succeeded" if result.ok else "refused"), level=logging.INFO if result.ok
              else logging.WARNING, user_id=user_id, username=result.username or (user.username if user else None),
              known_user=user_id is not None, delayed_seconds=result.delayed_seconds or None)  # fmt: skip
    return result


def _check_password(session: Session, username: str, password: str, now: datetime, client: str | None,
                    sleep: Callable[[float], None]) -> AuthResult:  # fmt: skip
    """Check a password under the back-off policy and record a failure.

    - Per client (`client`: the caller's address): after `login_client_max_failures` failures within
      `login_failure_window_minutes`, attempts from it are refused without checking the password.
    - Per account: recent failures (kept in the database, so every process and tab sees them) hold the
      answer back by `backoff_seconds`, the right password included; a name no account has gets the same
      delays from an in-memory count, so timing does not tell whether it exists.
    Every refusal carries INVALID_CREDENTIALS; a disabled account says so only after the right password.
    """
    settings = get_settings()
    window = timedelta(minutes=settings.login_failure_window_minutes)
    clock = now.timestamp()
    if (
        client is not None
        and _client_failures.count(client, clock, window.total_seconds()) >= settings.login_client_max_failures
    ):
        verify_password(password, _DUMMY_HASH)  # the same cost as a real check
        return AuthResult(False, INVALID_CREDENTIALS, throttled=True)

    user = get_user(session, username)
    name_key = normalize_username(username)
    if user is None:
        failures = _unknown_name_failures.count(name_key, clock, window.total_seconds())
    else:
        failures = _account_failures(user, now, window)
    delay = backoff_seconds(failures)
    if delay:
        sleep(delay)

    password_ok = verify_password(password, user.password_hash if user is not None else _DUMMY_HASH)
    if user is None or not password_ok:
        _record_failure(session, user, name_key, client, now, window)
        return AuthResult(False, INVALID_CREDENTIALS, delayed_seconds=delay)
    if not user.is_active:
        return AuthResult(False, "This account is disabled. Ask a staff member to re-enable it.")
    if user.failed_login_count or user.failed_login_window_start or user.locked_until:
        user.failed_login_count, user.failed_login_window_start, user.locked_until = 0, None, None
        session.add(user)
        session.commit()
    return AuthResult(True, f"Welcome, {user.name or user.username}.", username=user.username, user_id=user.id,
                      role=user.role, name=user.name, session_epoch=user.session_epoch, delayed_seconds=delay)  # fmt: skip


def _record_failure(session: Session, user: AppUser | None, name_key: str, client: str | None, now: datetime,
                    window: timedelta) -> None:  # fmt: skip
    """Count a refused password against the client, and against the account (in the database) or the unknown name."""
    clock = now.timestamp()
    if client is not None:
        _client_failures.add(client, clock)
    if user is None:
        _unknown_name_failures.add(name_key, clock)
        return
    if _account_failures(user, now, window) == 0:
        user.failed_login_window_start, user.failed_login_count = now, 0
    user.failed_login_count += 1
    user.locked_until = None  # no hard lock any more (the column predates the back-off)
    user.updated_at = now
    session.add(user)
    session.commit()


def load_session_user(session: Session, username: str) -> SessionUser | None:
    """The signed-in user's current row (role, epoch, timezone) or None when it no longer exists."""
    user = get_user(session, username)
    if user is None:
        return None
    return SessionUser(
        user_id=user.id,
        username=user.username,
        role=user.role,
        name=user.name,
        email=user.email,
        session_epoch=user.session_epoch,
        is_active=user.is_active,
        timezone=user.timezone,
    )


def session_epoch(session: Session, username: str) -> int:
    """The user's current epoch; a session or cookie holding another value is revoked. -1 if unknown."""
    epoch = session.exec(select(AppUser.session_epoch).where(AppUser.username == normalize_username(username))).first()
    return -1 if epoch is None else int(epoch)


def bump_session_epoch(session: Session, username: str) -> int:
    """Revoke every session and cookie of this user (logout everywhere); returns the new epoch."""
    session.execute(
        sa.update(AppUser)
        .where(AppUser.username == normalize_username(username))
        .values(session_epoch=AppUser.session_epoch + 1, updated_at=utcnow())
    )
    session.commit()
    return session_epoch(session, username)


def change_password(session: Session, username: str, old: str, new: str) -> int:
    """Replace the password after checking the old one; signs out all sessions. Returns the new epoch."""
    user = get_user(session, username)
    if user is None or not verify_password(old, user.password_hash):
        raise ValueError("The current password is not correct.")
    if old == new:
        raise ValueError("The new password must differ from the current one.")
    user.password_hash = hash_password(new)
    user.updated_at = utcnow()
    session.add(user)
    session.commit()
    return bump_session_epoch(session, username)


def update_profile(session: Session, username: str, *, name: str | None, email: str | None) -> SessionUser:
    """Save the display name and e-mail (ValueError with a message when one is refused)."""
    name, email = clean_display_name(name), clean_email(email)
    user = get_user(session, username)
    if user is None:
        raise ValueError("This account no longer exists.")
    user.name, user.email, user.updated_at = name, email, utcnow()
    session.add(user)
    session.commit()
    return load_session_user(session, username)


def set_user_timezone(session: Session, username: str, tz_name: str | None) -> None:
    """Save the display time zone (None = follow the browser)."""
    if tz_name:
        try:
            zoneinfo.ZoneInfo(tz_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"Unknown time zone: {tz_name}") from None
    session.execute(
        sa.update(AppUser)
        .where(AppUser.username == normalize_username(username))
        .values(timezone=tz_name or None, updated_at=utcnow())
    )
    session.commit()


# "Log out" ends one sign-in (this browser: its tabs and its cookie) and leaves the user's other browsers
# alone, so it cannot bump the epoch. The revoked login ids live in this process until their cookies
# expire; after a restart a copied cookie of a logged-out browser works again until it expires, which
# "Sign out everywhere" (the epoch) rules out.
_revoked_logins: dict[str, float] = {}
_revoked_lock = threading.Lock()


def new_login_id() -> str:
    """An id for one sign-in, carried by its session and its re-login cookie."""
    return secrets.token_urlsafe(12)


def revoke_login(login_id: str | None) -> None:
    """End one sign-in: its sessions sign out on their next run and its cookie no longer signs anyone in."""
    if not login_id:
        return
    expires = time.time() + get_settings().auth_cookie_expiry_days * 86400
    with _revoked_lock:
        now = time.time()
        for old in [k for k, until in _revoked_logins.items() if until < now]:
            del _revoked_logins[old]
        _revoked_logins[login_id] = expires


def login_revoked(login_id: str | None) -> bool:
    with _revoked_lock:
        return bool(login_id) and login_id in _revoked_logins


def issue_session_token(username: str, epoch: int, now: datetime | None = None, login_id: str | None = None) -> str:
    """The re-login cookie: an HS256 JWT plus the session epoch (a cookie issued before a sign-out
    everywhere or a password change stops working everywhere) and the sign-in's id (see revoke_login)."""
    settings = get_settings()
    now = now or utcnow()
    exp = now + timedelta(days=settings.auth_cookie_expiry_days)
    claims = {"sub": normalize_username(username), "epoch": int(epoch), "iat": int(now.timestamp()),
              "exp": int(exp.timestamp())}  # fmt: skip
    if login_id:
        claims["sid"] = login_id
    return jwt.encode(claims, settings.auth_cookie_key, algorithm="HS256")


def verify_session_token(session: Session, token: str, now: datetime | None = None) -> SessionUser | None:
    """The user a re-login cookie names, if its signature, expiry and epoch are all still valid."""
    settings = get_settings()
    try:
        claims = jwt.decode(
            token,
            settings.auth_cookie_key,
            algorithms=["HS256"],
            options={"require": ["sub", "epoch", "exp"], "verify_exp": now is None},
        )
    except jwt.PyJWTError:
        return None
    if now is not None and claims["exp"] <= now.timestamp():
        return None
    login_id = claims.get("sid") if isinstance(claims.get("sid"), str) else None
    if login_revoked(login_id):
        return None
    user = load_session_user(session, str(claims["sub"]))
    if user is None or not user.is_active or user.session_epoch != claims["epoch"]:
        return None
    return replace(user, login_id=login_id)


def ensure_demo_users(session: Session) -> list[tuple[str, str, str]]:
    """Create the demo accounts in sandbox mode; returns (username, password, role) to show.

    In production mode this creates nothing and returns an empty list.
    """
    if not get_settings().sandbox_mode:
        return []
    for username, password, role in DEMO_USERS:
        if get_user(session, username) is None:
            try:
                create_user(session, username=username, password=password, role=role, name=f"Demo {role}")
            except ValueError:  # created meanwhile by another process
                pass
    return list(DEMO_USERS)


__all__ = [
    "AuthResult",
    "SessionUser",
    "DEMO_USERS",
    "authenticate",
    "bump_session_epoch",
    "change_password",
    "create_user",
    "ensure_demo_users",
    "load_session_user",
    "issue_session_token",
    "new_login_id",
    "reset_login_throttle",
    "revoke_login",
    "update_profile",
    "session_epoch",
    "set_user_timezone",
    "verify_session_token",
]
