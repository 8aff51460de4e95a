"""The one place secrets are scrubbed from text: SnapTrade user secrets and the consumer key in query-string
or JSON form, and every secret registered with `remember_secret` (user secrets as they are decrypted, the
consumer key, cookie key and encryption keys). `install_log_redaction` applies it to every log record."""

from __future__ import annotations

import logging
import re
import threading
import traceback

from core.settings import Settings

_SECRET_PARAM = re.compile(
    r"(userSecret|user_secret|consumerKey|consumer_key)(=|\"?\s*[:=]\s*\"?|'\s*:\s*')([^&\s\"',}]+)"
)
_known_secrets: set[str] = set()
_known_lock = threading.Lock()


def remember_secret(secret: str | None) -> None:
    """Register a secret so `redact` removes it wherever it appears."""
    if secret and len(secret) >= 6:
        with _known_lock:
            _known_secrets.add(secret)


def known_secrets() -> set[str]:
    """The registered secrets (the test suite checks that none of them reached a log)."""
    with _known_lock:
        return set(_known_secrets)


def redact(text: object) -> str:
    """The one place secrets are scrubbed: query-string/JSON forms and every registered secret."""
    out = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED]", str(text))
    with _known_lock:
        secrets = list(_known_secrets)
    for s in secrets:
        if s in out:
            out = out.replace(s, "[REDACTED]")
    return out


_factory_installed = False


def install_log_redaction(settings: Settings | None = None) -> None:
    """Scrub secrets from every log record as it is created, whichever logger or handler it reaches
    (urllib3 logs full URLs, and the SDK puts userSecret in the query string). With settings, the
    consumer key, cookie key and encryption keys are registered as secrets too."""
    global _factory_installed
    if settings is not None:
        for value in (settings.snaptrade_consumer_key, settings.auth_cookie_key, *settings.fernet_keys):
            remember_secret(value)
    if _factory_installed:
        return
    base = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not stop logging
            return record
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info))).rstrip("\n")
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True
