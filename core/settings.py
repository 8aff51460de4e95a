"""Typed settings for the whole app, read once from the environment and `.env`.

Sandbox mode (no SnapTrade credentials) generates missing keys once under `data/`;
production mode refuses to start with a missing or placeholder secret.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"

# Values people paste from examples; never acceptable as real secrets.
PLACEHOLDERS = {"", "changeme", "change-me", "changethis", "secret", "some_key", "your_key_here", "xxx"}


class ConfigurationError(RuntimeError):
    """Start-up cannot continue; the message names the variable to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""

    snaptrade_client_id: str = ""
    snaptrade_consumer_key: str = ""
    snaptrade_base_url: str = "https://api.snaptrade.com"
    # Deprecated dashboard-issued shared secret; only checked when set.
    snaptrade_webhook_legacy_secret: str = ""

    encryption_keys: str = ""
    auth_cookie_key: str = ""
    auth_cookie_name: str = "tradistry_auth"
    auth_cookie_expiry_days: float = 1.0
    app_base_url: str = "http://127.0.0.1:8501"
    allow_signup: bool = True

    # Sign-in back-off (no hard lock): failures per account past the free ones delay its answers,
    # 1 s doubling up to the cap; a client past its failure limit is refused until the window moves on.
    login_free_failures: int = 3
    login_delay_max_seconds: float = 8.0
    login_failure_window_minutes: int = 15
    login_client_max_failures: int = 20
    # Behind a trusted reverse proxy: the header holding the client's address (first entry), e.g. X-Forwarded-For.
    login_client_ip_header: str = ""

    sync_frequency_minutes: int = 24 * 60
    sync_overlap_days: int = 7
    sync_page_size: int = 1000
    sync_heartbeat_seconds: float = 10.0
    sync_stale_after_seconds: float = 90.0
    scheduler_jitter_seconds: int = 300
    manual_sync_limit: int = 5
    manual_sync_window_seconds: int = 60
    worker_enabled: bool = True
    worker_poll_seconds: float = 1.0

    http_max_retries: int = 6
    http_backoff_base_seconds: float = 0.5
    http_backoff_cap_seconds: float = 30.0
    http_timeout_seconds: float = 30.0

    webhook_max_bytes: int = 64 * 1024
    webhook_max_age_seconds: int = 6 * 60 * 60
    # An event for a connection not recorded yet (SnapTrade's webhooks beat the portal's callback) waits
    # this long for the callback or a reconcile to record it before it is flagged for staff.
    webhook_pending_seconds: int = 15 * 60

    sandbox_port: int = 0
    sandbox_seed: int = 7
    # Admin token of the embedded emulator's `/__sandbox__/` API; empty: a random one per start (undiscoverable).
    sandbox_admin_token: str = ""

    log_level: str = "INFO"
    log_format: str = "text"  # text (readable lines) or json (one JSON object per line)

    @field_validator("data_dir", mode="before")
    @classmethod
    def _expand(cls, v: object) -> object:
        return Path(v).expanduser() if isinstance(v, str) else v

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, v: object) -> object:
        if isinstance(v, str) and v.strip().lower() not in ("text", "json"):
            raise ValueError("LOG_FORMAT must be text or json")
        return v.strip().lower() if isinstance(v, str) else v

    @property
    def sandbox_mode(self) -> bool:
        return not (self.snaptrade_client_id and self.snaptrade_consumer_key)

    @property
    def fernet_keys(self) -> list[str]:
        return [k.strip() for k in self.encryption_keys.split(",") if k.strip()]

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tradistry.db'}"


def persistent_key(data_dir: Path, name: str, make=lambda: secrets.token_urlsafe(24)) -> str:
    """A key generated once and kept on disk, so a sandbox restart keeps working."""
    path = data_dir / "keys" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def _check_production(settings: Settings) -> None:
    keys = settings.fernet_keys
    if not keys or any(k.lower() in PLACEHOLDERS for k in keys):
        raise ConfigurationError(
            "ENCRYPTION_KEYS is missing or a placeholder: set it to one or more comma-separated "
            'Fernet keys (python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())").'
        )
    for k in keys:
        try:
            Fernet(k.encode())
        except (ValueError, TypeError):
            raise ConfigurationError(
                "ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes)."
            ) from None
    cookie = settings.auth_cookie_key
    if cookie.lower() in PLACEHOLDERS or len(cookie.encode()) < 32:
        raise ConfigurationError(
            "AUTH_COOKIE_KEY is missing, a placeholder or shorter than 32 bytes: set it to a random value "
            '(python -c "import secrets; print(secrets.token_urlsafe(48))").'
        )


def load_settings(**overrides) -> Settings:
    """Build and validate settings; fills sandbox-mode keys, refuses weak production ones."""
    settings = Settings(**overrides)
    if settings.sandbox_mode:
        if not settings.fernet_keys:
            settings.encryption_keys = persistent_key(
                settings.data_dir, "encryption_key", lambda: Fernet.generate_key().decode()
            )
        if not settings.auth_cookie_key:
            settings.auth_cookie_key = persistent_key(
                settings.data_dir, "cookie_key", lambda: secrets.token_urlsafe(48)
            )
    else:
        _check_production(settings)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()


__all__ = ["Settings", "ConfigurationError", "get_settings", "load_settings", "reset_settings_cache", "Field"]
