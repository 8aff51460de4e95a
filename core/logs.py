"""Structured logging: every significant event is one record with a timestamp, level, event name and the
ids it concerns, written as readable text (default) or as JSON lines (LOG_FORMAT=json).

`log_event(logger, "run.finish", run_id=…, …)` logs one event; `log_context(run_id=…)` adds ids to every
record logged inside it (contextvars: it follows the code, also into anyio worker threads). Values pass
through core.redaction.redact and fields named like secrets are dropped, so no secret is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from core.redaction import install_log_redaction, redact

ID_FIELDS = ("user_id", "connection_id", "run_id", "request_id")
LOG_FORMATS = ("text", "json")
# A field whose name says it holds a secret is never written, whatever its value.
_SECRET_NAME = re.compile(
    r"secret|password|passwd|token|cookie|signature|consumer_key|api_key|portal_url|link_url", re.I
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_context: ContextVar[dict[str, Any]] = ContextVar("tradistry_log_context", default={})  # noqa: B039 - never mutated


def log_event(logger: logging.Logger, event: str, message: str | None = None, *, level: int = logging.INFO,
              exc_info: Any = None, **fields: Any) -> None:  # fmt: skip
    """One event: `event` is a dotted name ("webhook.verdict"), `message` a sentence for people."""
    if logger.isEnabledFor(level):
        logger.log(level, message or event, exc_info=exc_info, extra={"event": event, "fields": fields}, stacklevel=2)


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Ids (user_id, run_id, request_id, …) added to every record logged inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def _clean(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value][:50]
    if isinstance(value, dict):
        return {str(k): ("[REDACTED]" if _SECRET_NAME.search(str(k)) else _clean(v)) for k, v in value.items()}
    return _CONTROL.sub(" ", redact(value))[:2000]


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's event name, ids and fields, cleaned: what both formats write after the basics."""
    fields = {**_context.get(), **(getattr(record, "fields", None) or {})}
    out: dict[str, Any] = {"event": getattr(record, "event", None) or "log"}
    for key in ID_FIELDS:
        out[key] = _clean(fields.pop(key, None))
    for key, value in fields.items():
        out[key] = "[REDACTED]" if _SECRET_NAME.search(key) else _clean(value)
    return out


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, message, the four ids (null when unknown), fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": _timestamp(record), "level": record.levelname, "logger": record.name,
               "message": _clean(record.getMessage()), **record_fields(record)}  # fmt: skip
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = redact(record.exc_text or self.formatException(record.exc_info))
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-12-05T12:00:00.123Z INFO tradistry.worker run.finish: message run_id=7 user_id=3 …`"""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        event = fields.pop("event")
        pairs = " ".join(f"{k}={json.dumps(v, default=str) if isinstance(v, (dict, list)) or (isinstance(v, str) and ' ' in v) else v}"
                         for k, v in fields.items() if v is not None)  # fmt: skip
        message = _clean(record.getMessage())
        line = f"{_timestamp(record)} {record.levelname} {record.name} {event}: {message}" + (
            f" {pairs}" if pairs else ""
        )
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + redact(record.exc_text or self.formatException(record.exc_info))
        return line


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


class _AppHandler(logging.StreamHandler):
    """Ours, so configuring again replaces it instead of adding a second one."""


def configure_logging(settings: Any = None, stream: TextIO | None = None) -> logging.Handler:
    """Send every record that reaches the root logger (ours, uvicorn's, the SDK's) through one handler, in
    the format and at the level the settings ask for; secrets are scrubbed as records are created."""
    if settings is None:
        from core.settings import get_settings

        settings = get_settings()
    install_log_redaction(settings)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _AppHandler)]:
        root.removeHandler(handler)
    handler = _AppHandler(stream or sys.stderr)
    handler.setFormatter(formatter(str(settings.log_format).lower()))
    root.addHandler(handler)
    root.setLevel(str(settings.log_level).upper())
    return handler
