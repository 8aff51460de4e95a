"""Encryption at rest for SnapTrade user secrets (Fernet / MultiFernet).

The first key of ENCRYPTION_KEYS encrypts; every key decrypts, so keys can be rotated.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlmodel import Session, select

from core.settings import Settings, get_settings
from core.storage.models import SnapTradeUser, utcnow


class SecretDecryptionError(RuntimeError):
    """A stored secret cannot be opened with any configured key (wrong or missing key)."""


def _fernet(settings: Settings | None = None) -> MultiFernet:
    keys = (settings or get_settings()).fernet_keys
    if not keys:
        raise SecretDecryptionError("ENCRYPTION_KEYS is empty: no key to encrypt or decrypt user secrets")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError):
        raise SecretDecryptionError("ENCRYPTION_KEYS holds a value that is not a Fernet key") from None


def encrypt_secret(plaintext: str, settings: Settings | None = None) -> str:
    return _fernet(settings).encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str, settings: Settings | None = None) -> str:
    try:
        return _fernet(settings).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            "a stored SnapTrade user secret cannot be decrypted with the configured ENCRYPTION_KEYS "
            "(was the key that encrypted it removed?)"
        ) from None


def rotate_secrets(session: Session, settings: Settings | None = None) -> int:
    """Re-encrypt every stored secret under the first key; returns how many rows were rewritten."""
    f = _fernet(settings)
    count = 0
    for row in session.exec(select(SnapTradeUser)).all():
        try:
            row.user_secret_encrypted = f.rotate(row.user_secret_encrypted.encode()).decode()
        except InvalidToken:
            raise SecretDecryptionError(
                f"secret of SnapTrade user row {row.id} cannot be decrypted with any configured key; nothing was rotated"
            ) from None
        row.updated_at = utcnow()
        session.add(row)
        count += 1
    return count
