"""core.messages: any exception becomes one short, redacted sentence; user input is echoed cut."""

from __future__ import annotations

import json
import sqlite3

import pytest
import sqlalchemy.exc

from core.messages import MAX_ECHO_CHARS, MAX_ERROR_CHARS, describe_error, echo_input, shorten
from core.redaction import remember_secret
from core.snaptrade.client import UpstreamError

SECRET = "user-secret-5f1c2b9e"


def _locked_page_write() -> sqlalchemy.exc.OperationalError:
    """What SQLAlchemy raised when SQLite stayed locked under a page write: the statement and 1,000 raw activities."""
    statement = "INSERT INTO brokerage_transactions (snaptrade_activity_id, raw) VALUES " + ", ".join(["(?, ?)"] * 1000)
    rows = [(f"act-{i}", json.dumps({"id": f"act-{i}", "description": "BUY 10 AAPL", "amount": "-1703.10"}))
            for i in range(1000)]  # fmt: skip
    return sqlalchemy.exc.OperationalError(statement, rows, sqlite3.OperationalError("database is locked"))


def test_a_database_error_keeps_the_drivers_first_line_and_drops_statement_and_rows():
    exc = _locked_page_write()
    assert len(str(exc)) > 5_000 and "[SQL: INSERT" in str(exc)
    assert describe_error(exc) == "database error (OperationalError): database is locked"


def test_multi_line_driver_messages_keep_their_first_line():
    orig = Exception(
        'duplicate key value violates unique constraint "ux"\nDETAIL:  Key (raw)=({"id": "act-1"}) exists.'
    )
    message = describe_error(sqlalchemy.exc.IntegrityError("INSERT INTO t VALUES (%s)", ["x"], orig))
    assert message == 'database error (Exception): duplicate key value violates unique constraint "ux"'


@pytest.mark.parametrize("exc", [ValueError("x" * 100_000), RuntimeError("line one\n" + "y" * 100_000),
                                 UpstreamError("SnapTrade answered 503: " + "<html>" * 20_000)])  # fmt: skip
def test_every_message_is_bounded(exc):
    message = describe_error(exc)
    assert len(message) <= MAX_ERROR_CHARS and "\n" not in message
    assert message.startswith(("ValueError: x", "RuntimeError: line one", "SnapTrade answered 503"))


def test_secrets_are_redacted_before_the_message_is_cut():
    remember_secret(SECRET)
    message = describe_error(KeyError(f"no account for userSecret={SECRET} " + "z" * 1000))
    assert SECRET not in message and "[REDACTED]" in message


def test_an_exception_without_text_is_named():
    assert describe_error(TimeoutError()) == "TimeoutError"


def test_shorten_puts_text_on_one_line_with_an_ellipsis():
    assert shorten("a\n  b", 10) == "a b"
    assert shorten("word " * 10, 12) == "word word w…"


def test_echo_input_quotes_short_input_and_cuts_long_input_saying_its_length():
    assert echo_input("bob") == "'bob'"
    long = echo_input("a" * 100_000)
    assert long == "'" + "a" * MAX_ECHO_CHARS + "'… (100,000 characters)"
    assert echo_input("\x1b[2J") == "'\\x1b[2J'"  # terminal control characters are not echoed raw


def test_a_file_that_cannot_be_opened_is_named_with_the_reason_not_the_exception_class(tmp_path):
    with pytest.raises(OSError) as missing:
        open(tmp_path / "no-such-dir" / "x.csv", "w")  # noqa: SIM115 - the error is the point
    assert describe_error(missing.value) == f"cannot use {tmp_path}/no-such-dir/x.csv: No such file or directory"
