"""AppTest of the Operations page: staff-only gate, health tiles, problem lists and actions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core.storage.models import StaffAction, SyncIssue, TransactionSyncLog
from tests import factories as f

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "operations.py")
NOW = datetime.now(UTC)


def _app(user_id: int | None, role: str = "staff") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    if user_id is not None:
        at.session_state["current_user"] = f.session_user(
            user_id, username="ops-carol", role=role, timezone="America/New_York"
        )
    return at


def _seed(session):
    user, connection, account = f.make_trader(session, "bob")
    broken = f.make_connection(
        session,
        user,
        status="needs_reconnect",
        brokerage_name="Questrade",
        status_reason="CONNECTION_BROKEN",
        error_message="Login expired",
        error_details={"code": "3003"},
        disabled_at=NOW - timedelta(hours=5),
    )
    f.make_run(session, user, connection, status="completed", duration_seconds=10.0, completed_at=NOW)
    failed = f.make_run(
        session,
        user,
        broken,
        status="failed",
        duration_seconds=30.0,
        completed_at=NOW,
        error_message="connection disabled",
        error_details={"code": "3003"},
        account_breakdown=[{"account_id": account.id, "status": "failed", "fetched": 0}],
    )
    issue = f.make_issue(session, user, account, reason="missing trade_date")
    f.make_webhook_event(session, user, event_type="CONNECTION_BROKEN", status="processed")
    return failed, issue


def test_a_trader_is_denied_and_sees_nothing_else(session):
    _seed(session)
    trader = f.make_user(session, "mallory")
    at = _app(trader.id, role="trader").run()
    assert any("Access denied" in e.value for e in at.error)
    assert not at.metric and not at.dataframe and not at.title


def test_signed_out_visitor_is_asked_to_sign_in(engine):
    at = _app(None).run()
    assert any("Please sign in" in i.value for i in at.info)
    assert not at.metric


def test_staff_sees_health_tiles_and_problem_lists(session):
    _seed(session)
    staff = f.make_user(session, "ops-carol", role="staff")
    at = _app(staff.id).run()
    assert not at.exception
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Sync success (24 h)"] == "50%"
    assert tiles["Active connections"] == "1"
    assert tiles["Need attention"] == "1"
    assert (tiles["Run duration p50"], tiles["Run duration p95"]) == ("10 s", "30 s")
    assert tiles["Queue depth"] == "0"
    assert any("3003: 1" in c.value for c in at.caption)
    frames = [d.value for d in at.dataframe]
    conn = next(df for df in frames if "brokerage_name" in df.columns and "status_reason" in df.columns)
    assert list(conn["brokerage_name"]) == ["Questrade"] and conn["since"][0].endswith(("EST", "EDT"))
    assert list(conn["status"]) == ["Needs reconnect"]  # in words, like the trader's badge
    assert "None" not in conn.astype(str).to_numpy().ravel().tolist()  # a missing value is an empty cell
    grid = next(d for d in at.dataframe if "status_reason" in d.value.columns)
    headers = {name: cfg.get("label") for name, cfg in json.loads(grid.proto.columns).items()}
    assert (headers["brokerage_name"], headers["status_reason"], headers["error_message"]) == (
        "Brokerage",
        "Reason",
        "Error",
    )
    assert any("user_secret" in c for df in frames for c in df.columns) is False
    assert any('"code":"3003"' in j.value for j in at.json)


def test_short_runs_keep_their_fraction_of_a_second(session):
    user, connection, _ = f.make_trader(session, "dora")
    for seconds in (0.2, 2.0):
        f.make_run(session, user, connection, status="completed", duration_seconds=seconds, completed_at=NOW)
    staff = f.make_user(session, "ops-carol", role="staff")
    at = _app(staff.id).run()
    tiles = {m.label: m.value for m in at.metric}
    assert (tiles["Run duration p50"], tiles["Run duration p95"]) == ("0.2 s", "2.0 s")


def test_resolving_an_issue_asks_for_a_note_and_records_the_staff_member(session):
    _, issue = _seed(session)
    staff = f.make_user(session, "ops-carol", role="staff")
    at = _app(staff.id).run()
    at.button(key="ops_resolve").click().run()
    assert any(f"Mark issue #{issue.id}" in w.value for w in at.warning)  # a confirmation, nothing done yet
    assert session.get(SyncIssue, issue.id, populate_existing=True).resolved_at is None
    at.text_input(key="staff_action_note").input("duplicate of a corrected activity").run()
    at.button(key="staff_confirm").click().run()
    assert any("marked resolved by ops-carol" in s.value for s in at.success)
    session.expire_all()
    stored = session.get(SyncIssue, issue.id)
    assert stored.resolved_by == "ops-carol" and stored.resolved_at is not None
    assert stored.resolution_note == "duplicate of a corrected activity"
    [entry] = session.exec(select(StaffAction)).all()
    assert (entry.action, entry.actor_username, entry.issue_id, entry.outcome, entry.note) == (
        "resolve_issue",
        "ops-carol",
        issue.id,
        "done",
        "duplicate of a corrected activity",
    )


def test_retry_queues_a_new_run_for_the_connection(session):
    failed, _ = _seed(session)
    staff = f.make_user(session, "ops-carol", role="staff")
    at = _app(staff.id).run()
    assert not any(b.label == "Requeue this run" for b in at.button)  # one retry: "requeue" merged into it
    at.button(key="ops_retry").click().run()
    at.button(key="staff_confirm").click().run()
    assert not at.exception
    assert any(f"Retry of run #{failed.id}" in s.value for s in [*at.success, *at.error])
    session.expire_all()
    queued = session.exec(
        select(TransactionSyncLog).where(
            TransactionSyncLog.connection_id == failed.connection_id, TransactionSyncLog.status == "queued"
        )
    ).all()
    assert len(queued) == 1


def test_staff_resets_a_refused_secret_and_registers_again_when_snaptrade_refuses(session, sandbox):
    from core.accounts.connections import mark_secret_refused, reconcile_connections
    from core.storage.models import BrokerageConnection, SnapTradeUser
    from tests.syncsupport import connect

    rita = f.make_user(session, "rita")
    connect(session, sandbox, rita.id, history_size=5)
    reconcile_connections(session, user_id=rita.id)
    mark_secret_refused(session, rita.id)  # a refusal the stored secret survived: reset works
    staff = f.make_user(session, "ops-carol", role="staff")
    at = _app(staff.id).run()
    grid = next(d.value for d in at.dataframe if "flagged_connections" in d.value)
    assert list(grid["username"]) == ["rita"] and list(grid["flagged_connections"]) == [1]
    at.button(key="ops_secret_reset").click().run()
    assert not at.exception
    assert any("The SnapTrade secret was reset" in s.value for s in at.success)
    session.expire_all()
    st_user = session.exec(select(SnapTradeUser)).one()
    assert st_user.status == "active" and session.exec(select(BrokerageConnection.status)).one() == "active"

    old_id = st_user.snaptrade_user_id
    sandbox.invalidate_user_secret(old_id)
    mark_secret_refused(session, rita.id)
    at.run()
    at.button(key="ops_secret_reset").click().run()
    assert any("SnapTrade refused to reset" in e.value for e in at.error)
    assert at.button(key="ops_secret_register").disabled  # not without ticking the consequence
    at.checkbox(key="ops_secret_confirm").check().run()
    at.button(key="ops_secret_register").click().run()
    assert any("Registered with SnapTrade again" in s.value for s in at.success)
    session.expire_all()
    assert session.exec(select(SnapTradeUser)).one().snaptrade_user_id != old_id
    assert session.exec(select(BrokerageConnection.status)).one() == "disconnected"
    text = "\n".join(str(e.value) for kind in ("markdown", "success", "error") for e in getattr(at, kind))
    assert sandbox.user_secret(session.exec(select(SnapTradeUser)).one().snaptrade_user_id) not in text


def test_a_superseded_failure_leaves_the_runs_tab_and_the_attention_tile(session):
    user, conn, _ = f.make_trader(session, "bob")
    failed = f.make_run(session, user, conn, status="failed", error_message="SnapTrade answered 503")
    staff = f.make_user(session, "ops-carol", role="staff")
    at = _app(staff.id).run()
    assert {m.label: m.value for m in at.metric}["Need attention"] == "1"
    assert "Runs (1)" in [t.label for t in at.tabs]
    runs = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    assert list(runs["outcome"]) == ["Failed"] and list(runs["open"]) == [f"connection?id={conn.id}"]

    retry = f.make_run(session, user, conn, status="completed")
    at = _app(staff.id).run()
    assert {m.label: m.value for m in at.metric}["Need attention"] == "0"
    assert "Runs (0)" in [t.label for t in at.tabs]
    assert any("No failed, partial or interrupted run needs a person" in s.value for s in at.success)
    assert retry.id > failed.id


def test_rows_naming_a_connection_or_a_trader_link_to_their_pages(session):
    _seed(session)
    staff = f.make_user(session, "ops-carol", role="staff")
    at = _app(staff.id).run()
    connections = next(d.value for d in at.dataframe if "status_reason" in d.value.columns)
    broken_id = int(connections["id"][0])
    assert list(connections["open"]) == [f"connection?id={broken_id}"]
    links = " ".join(m.value for m in at.markdown)
    assert f"[Open connection #{broken_id}: timeline and actions](connection?id={broken_id})" in links
    assert "Trader bob: all connections and attempts](staff-user?id=" in links  # from the issue's row


def test_failed_connect_attempts_are_listed_with_their_trader(session):
    from core.accounts.attempts import record_callback

    user = f.make_user(session, "dora")
    record_callback(session, user_id=user.id, params={"status": "ERROR", "error_code": "1066"}, status="error",
                    message="The brokerage connection failed.", error_code="1066")  # fmt: skip
    staff = f.make_user(session, "ops-carol", role="staff")
    at = _app(staff.id).run()
    assert "Failed attempts (1)" in [t.label for t in at.tabs]
    attempts = next(d.value for d in at.dataframe if "SnapTrade result" in d.value.columns)
    assert list(attempts["Trader"]) == ["dora"] and list(attempts["Callback"]) == ["ERROR (1066)"]
