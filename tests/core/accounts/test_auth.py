"""Dashboard accounts: validation, bcrypt storage, the database lockout window, session epochs
and demo users, on SQLite and PostgreSQL (the `session` fixture is parametrized)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.accounts import auth
from core.settings import reset_settings_cache
from core.storage.models import AppUser, utcnow

PW = "correct horse battery"


def test_create_user_stores_a_bcrypt_hash_not_the_password(session):
    user = auth.create_user(session, username="  Alice ", password=PW, email="a@example.com", name="Alice A")
    assert user.username == "alice"
    assert user.role == "trader"
    assert PW not in user.password_hash
    assert user.password_hash.startswith("$2b$12$")
    assert auth.verify_password(PW, user.password_hash)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "ab"}, "3 to 32 characters"),
        ({"username": "bad name"}, "3 to 32 characters"),
        ({"password": "short"}, "at least 8 characters"),
        ({"password": "x" * 73}, "at most 72 bytes"),
        ({"password": " " * 10}, "only spaces"),
        ({"role": "admin"}, "Role must be one of"),
        ({"email": "not-an-email"}, "e-mail"),
    ],
)
def test_create_user_refuses_bad_input_with_a_clear_message(session, kwargs, message):
    args = {"username": "bob", "password": PW} | kwargs
    with pytest.raises(ValueError, match=message):
        auth.create_user(session, **args)


def test_duplicate_username_is_refused_case_insensitively(session):
    auth.create_user(session, username="carol", password=PW)
    with pytest.raises(ValueError, match="already taken"):
        auth.create_user(session, username="CAROL", password=PW)


def test_authenticate_accepts_the_right_password_and_returns_role_and_epoch(session):
    auth.create_user(session, username="dave", password=PW, role="staff")
    result = auth.authenticate(session, "Dave", PW)
    assert result.ok and result.username == "dave" and result.role == "staff"
    assert result.session_epoch == 0
    wrong = auth.authenticate(session, "dave", "wrong password")
    assert not wrong.ok and wrong.message == auth.INVALID_CREDENTIALS


def test_unknown_username_gets_the_same_answer_and_the_same_bcrypt_work(session, monkeypatch):
    import bcrypt

    auth.create_user(session, username="erin", password=PW)
    checks: list[int] = []
    real_checkpw = bcrypt.checkpw
    # Count the bcrypt checks (a spy, not a stub): timing itself is too noisy to assert on a shared machine.
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, h: checks.append(bcrypt_cost(h)) or real_checkpw(pw, h))
    known = auth.authenticate(session, "erin", "wrong password")
    unknown = auth.authenticate(session, "nobody", "wrong password")
    assert known.message == unknown.message == auth.INVALID_CREDENTIALS
    # Both answers paid one bcrypt check at the same cost, so an unknown name does not answer faster.
    assert len(checks) == 2 and checks[0] == checks[1] == auth.BCRYPT_COST


def bcrypt_cost(hashed: bytes) -> int:
    return int(hashed.split(b"$")[2])


def test_lockout_after_max_failures_refuses_the_right_password_until_the_window_passes(session, settings_env):
    settings_env.setenv("LOGIN_MAX_FAILURES", "3")
    settings_env.setenv("LOGIN_LOCKOUT_MINUTES", "15")
    reset_settings_cache()
    auth.create_user(session, username="frank", password=PW)
    t = utcnow()
    for i in range(2):
        assert auth.authenticate(session, "frank", "nope nope", now=t + timedelta(seconds=i)).message == (
            auth.INVALID_CREDENTIALS
        )
    third = auth.authenticate(session, "frank", "nope nope", now=t + timedelta(seconds=2))
    assert not third.ok and "locked for 15 minutes" in third.message

    during = auth.authenticate(session, "frank", PW, now=t + timedelta(minutes=10))
    assert not during.ok
    assert "locked until" in during.message and "Try again" in during.message
    assert during.locked_until is not None

    after = auth.authenticate(session, "frank", PW, now=t + timedelta(minutes=15, seconds=3))
    assert after.ok
    row = auth.get_user(session, "frank")
    session.refresh(row)
    assert row.failed_login_count == 0 and row.locked_until is None


def test_failures_spread_beyond_the_window_do_not_lock(session, settings_env):
    settings_env.setenv("LOGIN_MAX_FAILURES", "3")
    settings_env.setenv("LOGIN_LOCKOUT_MINUTES", "15")
    reset_settings_cache()
    auth.create_user(session, username="gina", password=PW)
    t = utcnow()
    for minutes in (0, 10, 20, 30):  # never three inside one 15-minute window
        assert auth.authenticate(session, "gina", "nope nope", now=t + timedelta(minutes=minutes)).message == (
            auth.INVALID_CREDENTIALS
        )
    assert auth.authenticate(session, "gina", PW, now=t + timedelta(minutes=31)).ok


def test_success_resets_the_failure_counter(session, settings_env):
    settings_env.setenv("LOGIN_MAX_FAILURES", "3")
    reset_settings_cache()
    auth.create_user(session, username="hank", password=PW)
    t = utcnow()
    auth.authenticate(session, "hank", "nope nope", now=t)
    auth.authenticate(session, "hank", "nope nope", now=t)
    assert auth.authenticate(session, "hank", PW, now=t).ok
    auth.authenticate(session, "hank", "nope nope", now=t)
    auth.authenticate(session, "hank", "nope nope", now=t)
    assert auth.authenticate(session, "hank", PW, now=t).ok


def test_lockout_is_kept_in_the_database_not_in_memory(session, engine, settings_env):
    settings_env.setenv("LOGIN_MAX_FAILURES", "2")
    reset_settings_cache()
    auth.create_user(session, username="iris", password=PW)
    auth.authenticate(session, "iris", "nope nope")
    auth.authenticate(session, "iris", "nope nope")
    from sqlmodel import Session

    with Session(engine) as other:  # a different session (another browser tab or process)
        assert not auth.authenticate(other, "iris", PW).ok


def test_bumping_the_epoch_invalidates_what_a_session_stored_at_login(session):
    auth.create_user(session, username="jack", password=PW)
    stored = auth.authenticate(session, "jack", PW).session_epoch
    assert auth.session_epoch(session, "jack") == stored
    assert auth.bump_session_epoch(session, "jack") == stored + 1
    assert auth.session_epoch(session, "jack") != stored
    assert auth.session_epoch(session, "nobody") == -1


def test_change_password_checks_the_old_one_and_revokes_sessions(session):
    auth.create_user(session, username="kate", password=PW)
    with pytest.raises(ValueError, match="current password"):
        auth.change_password(session, "kate", "wrong password", "another secret")
    before = auth.session_epoch(session, "kate")
    assert auth.change_password(session, "kate", PW, "another secret") == before + 1
    assert not auth.authenticate(session, "kate", PW).ok
    assert auth.authenticate(session, "kate", "another secret").ok


def test_set_user_timezone_validates_the_name(session):
    auth.create_user(session, username="mona", password=PW)
    auth.set_user_timezone(session, "mona", "Europe/Paris")
    assert auth.load_session_user(session, "mona").timezone == "Europe/Paris"
    with pytest.raises(ValueError, match="Unknown time zone"):
        auth.set_user_timezone(session, "mona", "Mars/Olympus")


def test_demo_users_exist_only_in_sandbox_mode(session, settings_env):
    created = auth.ensure_demo_users(session)
    assert {(u, r) for u, _, r in created} == {("demo", "trader"), ("staff", "staff")}
    for username, password, role in created:
        assert auth.authenticate(session, username, password).role == role
    assert auth.ensure_demo_users(session) == created  # idempotent


def test_production_mode_creates_no_demo_users(session, settings_env):
    settings_env.setenv("SNAPTRADE_CLIENT_ID", "prod-client")
    settings_env.setenv("SNAPTRADE_CONSUMER_KEY", "prod-consumer-key")
    reset_settings_cache()
    assert auth.ensure_demo_users(session) == []
    assert session.query(AppUser).count() == 0


def test_session_token_round_trips_until_the_epoch_is_bumped(session):
    auth.create_user(session, username="nina", password=PW)
    token = auth.issue_session_token("nina", auth.session_epoch(session, "nina"))
    assert auth.verify_session_token(session, token).username == "nina"
    auth.bump_session_epoch(session, "nina")  # logout elsewhere: the captured cookie is dead
    assert auth.verify_session_token(session, token) is None
    fresh = auth.issue_session_token("nina", auth.session_epoch(session, "nina"))
    assert auth.verify_session_token(session, fresh) is not None


def test_session_token_refuses_tampering_other_keys_and_expiry(session):
    import jwt

    auth.create_user(session, username="omar", password=PW)
    token = auth.issue_session_token("omar", 0)
    forged = jwt.encode({"sub": "omar", "epoch": 0, "exp": 4102444800}, "another-cookie-key-of-a-proper-length-32b", algorithm="HS256")
    assert auth.verify_session_token(session, forged) is None
    assert auth.verify_session_token(session, token[:-2] + "xx") is None
    assert auth.verify_session_token(session, "not a token") is None
    assert auth.verify_session_token(session, token, now=utcnow() + timedelta(days=400)) is None
