"""Settings: sandbox mode generates and keeps keys; production mode refuses missing or placeholder secrets."""

import pytest
from cryptography.fernet import Fernet

from core.settings import ConfigurationError, load_settings


def test_sandbox_mode_generates_keys_once_and_keeps_them(tmp_path, monkeypatch):
    for var in ("ENCRYPTION_KEYS", "AUTH_COOKIE_KEY", "SNAPTRADE_CLIENT_ID", "SNAPTRADE_CONSUMER_KEY", "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    first = load_settings(data_dir=tmp_path)
    assert first.sandbox_mode
    assert len(first.auth_cookie_key.encode()) >= 32
    Fernet(first.fernet_keys[0].encode())
    second = load_settings(data_dir=tmp_path)
    assert (second.encryption_keys, second.auth_cookie_key) == (first.encryption_keys, first.auth_cookie_key)
    assert first.resolved_database_url == f"sqlite:///{tmp_path / 'tradistry.db'}"


@pytest.mark.parametrize(
    "enc, cookie, variable",
    [("", "c" * 40, "ENCRYPTION_KEYS"), ("changeme", "c" * 40, "ENCRYPTION_KEYS"), ("not-a-fernet-key", "c" * 40, "ENCRYPTION_KEYS"),
     (None, "", "AUTH_COOKIE_KEY"), (None, "some_key", "AUTH_COOKIE_KEY"), (None, "short", "AUTH_COOKIE_KEY")],
)  # fmt: skip
def test_production_mode_refuses_missing_or_placeholder_secrets(tmp_path, monkeypatch, enc, cookie, variable):
    monkeypatch.delenv("ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("AUTH_COOKIE_KEY", raising=False)
    enc = Fernet.generate_key().decode() if enc is None else enc
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(data_dir=tmp_path, snaptrade_client_id="CID", snaptrade_consumer_key="KEY",
                      encryption_keys=enc, auth_cookie_key=cookie)  # fmt: skip
    assert not (tmp_path / "keys").exists()  # production never invents keys


def test_production_mode_accepts_real_secrets_and_base_url_override(tmp_path):
    s = load_settings(data_dir=tmp_path, snaptrade_client_id="CID", snaptrade_consumer_key="KEY",
                      encryption_keys=Fernet.generate_key().decode(), auth_cookie_key="x" * 48,
                      snaptrade_base_url="http://127.0.0.1:8787")  # fmt: skip
    assert not s.sandbox_mode and s.snaptrade_base_url == "http://127.0.0.1:8787"
