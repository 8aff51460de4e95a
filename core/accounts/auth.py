"""Dashboard accounts: bcrypt passwords, a time-windowed login lockout kept in the database,
and per-user session epochs that revoke every cookie and session on logout or password change.

No streamlit here: the login page and the cookie live in `pages/login.py` and call these functions.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from dataclasses import dataclass
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

# Sandbox-only accounts, shown on the login page so a newcomer can look around at once.
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("demo", "demo-trader-2024", "trader"),
    ("staff", "demo-staff-2024", "staff"),
)

# Verified against when the username is unknown, so both cases cost one bcrypt check
# and response time does not reveal which usernames exist.
_DUMMY_HASH = bcrypt.hashpw(b"not-a-real-password", bcrypt.gensalt(BCRYPT_COST))

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
    locked_until: datetime | None = None


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
    email = (email or "").strip() or None
    if email is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        raise ValueError("That e-mail address does not look valid.")
    name = (name or "").strip() or None
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


def authenticate(session: Session, username: str, password: str, now: datetime | None = None) -> AuthResult:
    """`check_password`, and one log event for the outcome (auth.login, auth.failure, auth.lockout). The
    typed username is logged only when it names an account: people type passwords into that field."""
    result = check_password(session, username, password, now)
    user = get_user(session, username) if not result.ok else None
    user_id = result.user_id if result.ok else (user.id if user else None)
    event = "auth.login" if result.ok else ("auth.lockout" if result.locked_until else "auth.failure")
    log_event(log, event, "sign-in " + ("succeeded" if result.ok else "refused"), level=logging.INFO if result.ok
              else logging.WARNING, user_id=user_id, username=result.username or (user.username if user else None),
              known_user=user_id is not None, locked_until=result.locked_until)  # fmt: skip
    return result


def check_password(session: Session, username: str, password: str, now: datetime | None = None) -> AuthResult:
    """Check a password under the lockout policy and record the attempt in the database.

    `login_max_failures` failures within `login_lockout_minutes` lock the account for
    `login_lockout_minutes`; during the lock even the right password is refused. Failures
    during a lock are not counted, so an attacker cannot extend it forever.
    """
    settings = get_settings()
    now = now or utcnow()
    window = timedelta(minutes=settings.login_lockout_minutes)
    user = get_user(session, username)
    if user is None:
        verify_password(password, _DUMMY_HASH)
        return AuthResult(False, INVALID_CREDENTIALS)

    password_ok = verify_password(password, user.password_hash)
    locked_until = _aware(user.locked_until)
    if locked_until is not None and locked_until > now:
        return AuthResult(
            False,
            "Too many failed attempts: this account is locked until "
            f"{locked_until:%H:%M} UTC ({_minutes_from(now, locked_until)}). Try again then.",
            locked_until=locked_until,
        )

    if not password_ok:
        window_start = _aware(user.failed_login_window_start)
        if window_start is None or now - window_start >= window or locked_until is not None:
            user.failed_login_window_start = now
            user.failed_login_count = 0
        user.failed_login_count += 1
        user.locked_until = None
        message = INVALID_CREDENTIALS
        if user.failed_login_count >= settings.login_max_failures:
            user.locked_until = now + window
            user.failed_login_count = 0
            user.failed_login_window_start = None
            message = (
                f"Too many failed attempts: this account is locked for {settings.login_lockout_minutes} minutes "
                f"(until {user.locked_until:%H:%M} UTC)."
            )
        user.updated_at = now
        session.add(user)
        session.commit()
        return AuthResult(False, message, locked_until=_aware(user.locked_until))

    if not user.is_active:
        return AuthResult(False, "This account is disabled. Ask a staff member to re-enable it.")
    if user.failed_login_count or user.failed_login_window_start or user.locked_until:
        user.failed_login_count = 0
        user.failed_login_window_start = None
        user.locked_until = None
        session.add(user)
        session.commit()
    return AuthResult(
        True,
        f"Welcome, {user.name or user.username}.",
        username=user.username,
        user_id=user.id,
        role=user.role,
        name=user.name,
        session_epoch=user.session_epoch,
    )


def _minutes_from(now: datetime, later: datetime) -> str:
    minutes = max(1, int((later - now).total_seconds() + 59) // 60)
    return f"in {minutes} minute{'s' if minutes != 1 else ''}"


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
    epoch = session.exec(
        select(AppUser.session_epoch).where(AppUser.username == normalize_username(username))
    ).first()
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


def issue_session_token(username: str, epoch: int, now: datetime | None = None) -> str:
    """The re-login cookie: an HS256 JWT plus the session epoch,
    so a cookie issued before a logout or password change stops working everywhere."""
    settings = get_settings()
    now = now or utcnow()
    exp = now + timedelta(days=settings.auth_cookie_expiry_days)
    claims = {"sub": normalize_username(username), "epoch": int(epoch), "iat": int(now.timestamp()),
              "exp": int(exp.timestamp())}  # fmt: skip
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
    user = load_session_user(session, str(claims["sub"]))
    if user is None or not user.is_active or user.session_epoch != claims["epoch"]:
        return None
    return user


def ensure_demo_users(session: Session) -> list[tuple[str, str, str]]:
    """Create the demo accounts in sandbox mode; returns (username, password, role) to show.

    In production mode this creates nothing and returns an empty list.
    """
    if not get_settings().sandbox_mode:
        return []
    for username, password, role in DEMO_USERS:
        if get_user(session, username) is None:
            try:
                create_user(
                    session, username=username, password=password, role=role, name=f"Demo {role}"
                )
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
    "session_epoch",
    "set_user_timezone",
    "verify_session_token",
]
