"""What people read when something fails: one short, redacted sentence for any exception (stored on
runs and connections, printed by the CLI), and their own input echoed back cut to a readable length.
"""

from __future__ import annotations

import sqlalchemy.exc

from core.redaction import redact
from core.snaptrade.client import SnapTradeError

# A message is read on a card, in a table cell or on a terminal line; the whole exception goes to the log.
MAX_ERROR_CHARS = 240
MAX_ECHO_CHARS = 40
# A run's message names each failed account with its reason; still a paragraph at most.
MAX_STORED_MESSAGE_CHARS = 1000
# Where SQLAlchemy starts appending the statement and its parameters to a driver's message.
_SQL_MARKERS = ("[SQL:", "[parameters:", "(Background on this error")


def describe_error(exc: BaseException) -> str:
    """A short sentence for `exc`: its kind and the first line of its message, redacted, at most
    MAX_ERROR_CHARS. Never the SQL, the bound parameters (a page of raw activities) or a payload."""
    if isinstance(exc, SnapTradeError):
        text = str(exc)  # already written for users (and redacted)
    elif isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None:
        text = f"database error ({type(exc.orig).__name__}): {_first_line(exc.orig)}"
    elif isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        text = f"database error ({type(exc).__name__}): {_first_line(exc)}"
    elif isinstance(exc, OSError) and exc.filename and exc.strerror:  # a file the user named: which, and why
        text = f"cannot use {exc.filename}: {exc.strerror}"
    else:
        text = f"{type(exc).__name__}: {_first_line(exc)}"
    return shorten(redact(text).rstrip(": "), MAX_ERROR_CHARS)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    for marker in _SQL_MARKERS:
        text = text.split(marker, 1)[0]
    return text.strip().split("\n", 1)[0]


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis when longer."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def echo_input(value: str, limit: int = MAX_ECHO_CHARS) -> str:
    """Something a person typed, quoted for a message; past `limit` characters cut, saying how long it was."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"
