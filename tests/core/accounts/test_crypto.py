"""Secrets at rest: never plaintext in the database, rotation works, a wrong key is a clear error."""

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlmodel import select

from core.accounts.crypto import SecretDecryptionError, decrypt_secret, encrypt_secret, rotate_secrets
from core.settings import load_settings
from core.storage.models import AppUser, SnapTradeUser

SECRET = "user-secret-3f9a1c77-plaintext"


def _store_secret(session, settings):
    user = AppUser(username="alice", password_hash="x")
    session.add(user)
    session.flush()
    session.add(
        SnapTradeUser(
            user_id=user.id, snaptrade_user_id="tds-1", user_secret_encrypted=encrypt_secret(SECRET, settings)
        )
    )
    session.commit()


def test_secret_is_never_stored_in_plaintext(session, engine, db_url):
    settings = load_settings()
    _store_secret(session, settings)
    with engine.connect() as c:
        dump = " ".join(str(v) for row in c.execute(sa.text("SELECT * FROM snaptrade_users")) for v in row)
    assert SECRET not in dump
    if db_url.startswith("sqlite"):
        engine.dispose()
        raw = open(db_url.removeprefix("sqlite:///"), "rb").read()
        for suffix in ("-wal",):
            try:
                raw += open(db_url.removeprefix("sqlite:///") + suffix, "rb").read()
            except FileNotFoundError:
                pass
        assert SECRET.encode() not in raw
    stored = session.exec(select(SnapTradeUser)).one()
    assert decrypt_secret(stored.user_secret_encrypted, settings) == SECRET


def test_rotation_reencrypts_under_the_first_key_and_old_key_can_go(session, settings_env):
    old = load_settings()
    _store_secret(session, old)
    new_key = Fernet.generate_key().decode()
    both = load_settings(encryption_keys=f"{new_key},{old.encryption_keys}")
    assert rotate_secrets(session, both) == 1
    session.commit()
    token = session.exec(select(SnapTradeUser)).one().user_secret_encrypted
    only_new = load_settings(encryption_keys=new_key)
    assert decrypt_secret(token, only_new) == SECRET
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(token, old)


def test_wrong_key_gives_a_clear_error_not_a_crash(session):
    _store_secret(session, load_settings())
    wrong = load_settings(encryption_keys=Fernet.generate_key().decode())
    token = session.exec(select(SnapTradeUser)).one().user_secret_encrypted
    with pytest.raises(SecretDecryptionError, match="ENCRYPTION_KEYS"):
        decrypt_secret(token, wrong)
    with pytest.raises(SecretDecryptionError, match="nothing was rotated"):
        rotate_secrets(session, wrong)
