"""Dashboard accounts: validation, bcrypt storage, the sign-in back-off (per-account delay in the
database, per-client limit), session epochs, login ids and demo users, on SQLite and PostgreSQL (the
`session` fixture is parametrized)."""

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


@pytest.fixture(autouse=True)
def _fresh_login_throttle():
    auth.reset_login_throttle()
    yield
    auth.reset_login_throttle()


class Sleeps(list):
    """A stand-in for time.sleep that records the delays asked for."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_failures_slow_the_next_answers_up_to_a_cap_and_never_lock_the_owner_out(session, settings_env):
    settings_env.setenv("LOGIN_FREE_FAILURES", "3")
    settings_env.setenv("LOGIN_DELAY_MAX_SECONDS", "8")
    reset_settings_cache()
    auth.create_user(session, username="frank", password=PW)
    t, sleeps = utcnow(), Sleeps()
    for i in range(8):
        refused = auth.authenticate(session, "frank", "nope nope", now=t + timedelta(seconds=i), sleep=sleeps)
        assert refused.message == auth.INVALID_CREDENTIALS and not refused.ok
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 8.0]  # three answered at once, then 1 s doubling to the cap
    owner = auth.authenticate(session, "frank", PW, now=t + timedelta(seconds=9), sleep=sleeps)
    assert owner.ok and owner.delayed_seconds == 8.0  # within seconds, however long the guessing went on
    assert auth.authenticate(session, "frank", PW, now=t + timedelta(seconds=10), sleep=sleeps).delayed_seconds == 0
    row = auth.get_user(session, "frank")
    session.refresh(row)
    assert row.failed_login_count == 0 and row.locked_until is None


def test_an_unknown_name_is_slowed_exactly_like_an_account(session, settings_env):
    settings_env.setenv("LOGIN_FREE_FAILURES", "1")
    reset_settings_cache()
    auth.create_user(session, username="gail", password=PW)
    known, unknown = Sleeps(), Sleeps()
    for _ in range(4):
        assert auth.authenticate(session, "gail", "nope nope", sleep=known).message == auth.INVALID_CREDENTIALS
        assert auth.authenticate(session, "ghost", "nope nope", sleep=unknown).message == auth.INVALID_CREDENTIALS
    assert known == unknown == [1.0, 2.0, 4.0]


def test_failures_spread_beyond_the_window_do_not_add_up(session, settings_env):
    settings_env.setenv("LOGIN_FREE_FAILURES", "3")
    settings_env.setenv("LOGIN_FAILURE_WINDOW_MINUTES", "15")
    reset_settings_cache()
    auth.create_user(session, username="gina", password=PW)
    t, sleeps = utcnow(), Sleeps()
    for minutes in (0, 10, 20, 30):  # never three inside one 15-minute window
        auth.authenticate(session, "gina", "nope nope", now=t + timedelta(minutes=minutes), sleep=sleeps)
    assert auth.authenticate(session, "gina", PW, now=t + timedelta(minutes=31), sleep=sleeps).ok
    assert sleeps == []


def test_a_client_past_its_failure_limit_is_refused_unchecked_until_the_window_moves_on(session, settings_env):
    settings_env.setenv("LOGIN_CLIENT_MAX_FAILURES", "3")
    settings_env.setenv("LOGIN_FREE_FAILURES", "10")
    reset_settings_cache()
    auth.create_user(session, username="hank", password=PW)
    t = utcnow()
    for name in ("hank", "someone", "hank"):
        auth.authenticate(session, name, "nope nope", now=t, client="203.0.113.7")
    blocked = auth.authenticate(session, "hank", PW, now=t, client="203.0.113.7")
    assert not blocked.ok and blocked.throttled and blocked.message == auth.INVALID_CREDENTIALS
    assert auth.authenticate(session, "hank", PW, now=t, client="198.51.100.2").ok  # the owner, elsewhere
    later = auth.authenticate(session, "hank", PW, now=t + timedelta(minutes=16), client="203.0.113.7")
    assert later.ok


def test_the_account_back_off_is_kept_in_the_database_not_in_memory(session, engine, settings_env):
    settings_env.setenv("LOGIN_FREE_FAILURES", "2")
    reset_settings_cache()
    auth.create_user(session, username="iris", password=PW)
    auth.authenticate(session, "iris", "nope nope", sleep=Sleeps())
    auth.authenticate(session, "iris", "nope nope", sleep=Sleeps())
    from sqlmodel import Session

    sleeps = Sleeps()
    with Session(engine) as other:  # a different session (another browser tab or process)
        assert auth.authenticate(other, "iris", PW, sleep=sleeps).ok
    assert sleeps == [1.0]


def test_logging_out_one_sign_in_kills_its_cookie_but_not_the_others(session):
    auth.create_user(session, username="lena", password=PW)
    here, there = auth.new_login_id(), auth.new_login_id()
    mine = auth.issue_session_token("lena", 0, login_id=here)
    elsewhere = auth.issue_session_token("lena", 0, login_id=there)
    assert auth.verify_session_token(session, mine).login_id == here
    auth.revoke_login(here)
    assert auth.verify_session_token(session, mine) is None
    assert auth.verify_session_token(session, elsewhere).login_id == there
    assert auth.session_epoch(session, "lena") == 0


def test_profile_fields_have_length_limits_with_a_message(session):
    auth.create_user(session, username="max", password=PW)
    with pytest.raises(ValueError, match=f"at most {auth.NAME_MAX_CHARS} characters; this one has 300"):
        auth.update_profile(session, "max", name="N" * 300, email=None)
    with pytest.raises(ValueError, match=f"at most {auth.EMAIL_MAX_CHARS} characters"):
        auth.update_profile(session, "max", name=None, email="x" * 250 + "@example.com")
    with pytest.raises(ValueError, match="control characters"):
        auth.update_profile(session, "max", name="Max\x00", email=None)
    with pytest.raises(ValueError, match=f"at most {auth.NAME_MAX_CHARS} characters"):
        auth.create_user(session, username="maxi", password=PW, name="N" * 81)
    user = auth.update_profile(session, "max", name="  Max   M. ", email=" max@example.com ")
    assert (user.name, user.email) == ("Max M.", "max@example.com")


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
    forged = jwt.encode(
        {"sub": "omar", "epoch": 0, "exp": 4102444800}, "another-cookie-key-of-a-proper-length-32b", algorithm="HS256"
    )
    assert auth.verify_session_token(session, forged) is None
    assert auth.verify_session_token(session, token[:-2] + "xx") is None
    assert auth.verify_session_token(session, "not a token") is None
    assert auth.verify_session_token(session, token, now=utcnow() + timedelta(days=400)) is None
