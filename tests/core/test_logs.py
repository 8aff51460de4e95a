"""Structured logs: with LOG_FORMAT=json every record is one JSON object with a timestamp, level, event
name and the ids; the app's significant events are each one record; no secret is ever written; the
text format and the level setting. The JSON captured here is also left in test-artifacts/logs/ for
the suite's secret scan (tests/conftest.py)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlmodel import Session

from core.accounts import auth
from core.accounts.connections import create_portal_link, get_snaptrade_identity, reconcile_connections
from core.jobs import queue as jobs
from core.jobs.worker import Worker
from core.logs import configure_logging, log_context, log_event
from core.redaction import remember_secret
from core.settings import Settings, get_settings, reset_settings_cache
from core.staff.actions import perform
from core.web.webhooks import log_delivery, process_webhook
from tests import factories as f
from tests.conftest import ROOT, TEST_COOKIE_KEYS
from tests.syncsupport import connect, make_user

ARTIFACT = ROOT / "test-artifacts" / "logs" / "structured-json.log"
BASICS = ("ts", "level", "logger", "event", "message", "user_id", "connection_id", "run_id", "request_id")
PASSWORD = "correct horse battery"  # tests.syncsupport.make_user's


@pytest.fixture
def capture(settings_env) -> Iterator:
    """Configure logging as the app does, into a buffer; returns a function that reconfigures the format."""
    root = logging.getLogger()
    level, stream, handlers = root.level, io.StringIO(), []

    def use(log_format: str = "json", log_level: str = "INFO") -> io.StringIO:
        settings_env.setenv("LOG_FORMAT", log_format)
        settings_env.setenv("LOG_LEVEL", log_level)
        reset_settings_cache()
        stream.seek(0)
        stream.truncate()
        handlers.append(configure_logging(get_settings(), stream=stream))
        return stream

    yield use
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_json_record_has_the_basics_the_context_ids_and_no_secret(capture):
    stream = capture("json")
    remember_secret("s3cr3t-user-secret-value")
    log = logging.getLogger("tradistry.test")
    with log_context(user_id=7, request_id="req-12345678"):
        log_event(log, "demo.event", "used userSecret=s3cr3t-user-secret-value here", connection_id=3,
                  portal_url="https://portal/abc", user_secret="x", nested={"token": "t", "ok": 1})  # fmt: skip
    logging.getLogger("somebody.else").warning("plain %s record", "library")
    first, second = records(stream)
    assert set(BASICS) <= set(first) and set(BASICS) <= set(second)
    assert (first["event"], first["level"], first["user_id"], first["connection_id"], first["request_id"]) == (
        "demo.event", "INFO", 7, 3, "req-12345678")  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["portal_url"] == first["user_secret"] == "[REDACTED]" and first["nested"] == {
        "token": "[REDACTED]",
        "ok": 1,
    }
    assert "s3cr3t-user-secret-value" not in stream.getvalue()
    assert (second["event"], second["message"], second["user_id"]) == ("log", "plain library record", None)


def test_text_format_is_one_readable_line_with_timestamp_level_event_and_ids(capture):
    stream = capture("text")
    log_event(logging.getLogger("tradistry.test"), "run.finish", "sync run 4 completed", run_id=4, fetched=10)
    line = stream.getvalue().strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO tradistry\.test run\.finish: sync run 4 "
                        r"completed run_id=4 fetched=10", line), line  # fmt: skip


def test_the_level_setting_drops_quieter_records(capture):
    stream = capture("json", "WARNING")
    log = logging.getLogger("tradistry.test")
    log_event(log, "quiet.event")
    log_event(log, "loud.event", level=logging.WARNING)
    assert [r["event"] for r in records(stream)] == ["loud.event"]


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValidationError, match="LOG_FORMAT must be text or json"):
        Settings(log_format="xml")


def test_the_apps_significant_events_are_json_records_without_secrets(capture, engine, sandbox, settings_env):
    settings_env.setenv("HTTP_BACKOFF_BASE_SECONDS", "0.01")
    settings_env.setenv("HTTP_MAX_RETRIES", "10")
    stream = capture("json")
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s, "logan")
        staff = f.make_user(s, "sam", role="staff")
        auth.reset_login_throttle()
        assert auth.authenticate(s, "logan", PASSWORD).ok
        for _ in range(get_settings().login_client_max_failures + 1):  # the last one is throttled unchecked
            auth.authenticate(s, "logan", "wrong password!", client="10.0.0.9", sleep=lambda _: None)
        auth.authenticate(s, "nobody-here", "a typed password")
        auth_id = connect(s, sandbox, uid)
        create_portal_link(s, user_id=uid, broker="SANDBOX_US", redirect_url="http://127.0.0.1:9/callback")
        identity = get_snaptrade_identity(s, uid)
        payload = {"webhookId": "w-log", "eventType": "CONNECTION_ADDED", "userId": identity.snaptrade_user_id,
                   "clientId": "CID", "eventTimestamp": datetime.now(UTC).isoformat(), "brokerageAuthorizationId": auth_id}  # fmt: skip
        result = process_webhook(s, payload)
        log_delivery("CONNECTION_ADDED", "w-log", result.outcome, result.event_status or "", result)
        reconcile_connections(s, user_id=uid)
        [run] = jobs.active_runs(s, uid)  # queued by the early CONNECTION_ADDED once the connection was recorded
        conn_id = run.connection_id
        jobs.claim_run(s, run.id, "log-test")
        sandbox.set_faults(error_rate=0.3, seed=3)
        Worker(engine=engine, scheduler=False).execute(run.id)
        sandbox.set_faults()
        perform(s, actor_user_id=staff.id, action="disable_auto_sync", connection_id=conn_id)
    text = stream.getvalue()
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(text)
    parsed = records(stream)
    assert parsed and all(set(BASICS) <= set(r) for r in parsed)
    events = {r["event"] for r in parsed}
    expected = {"auth.login", "auth.failure", "auth.throttled", "portal.link", "webhook.verdict", "webhook.matched",
                "run.start", "run.finish", "snaptrade.retry", "staff.action"}  # fmt: skip
    assert expected <= events, expected - events
    finish = next(r for r in parsed if r["event"] == "run.finish")
    assert (finish["run_id"], finish["user_id"], finish["connection_id"]) == (run.id, uid, conn_id)
    assert finish["fetched"] > 0 and finish["duration_seconds"] > 0 and finish["api_requests"] > 0
    retry = next(r for r in parsed if r["event"] == "snaptrade.retry")
    assert retry["upstream_status"] in (500, 503) and retry["run_id"] == run.id and retry["attempt"] >= 1
    action = next(r for r in parsed if r["event"] == "staff.action")
    assert (action["actor"], action["action"], action["outcome"], action["connection_id"]) == (
        "sam",
        "disable_auto_sync",
        "done",
        conn_id,
    )
    failures = [r for r in parsed if r["event"] == "auth.failure"]
    assert any(r["user_id"] is None and r["username"] is None for r in failures)  # an unknown name is not logged
    for secret in (identity.user_secret, sandbox.consumer_key, PASSWORD, "wrong password!", "a typed password",
                   "nobody-here", *TEST_COOKIE_KEYS):  # fmt: skip
        assert secret not in text, f"{secret[:4]}… reached the logs"
