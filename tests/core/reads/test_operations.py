"""core.reads.operations on SQLite and PostgreSQL: connections and runs that need a person, the issues
ledger, the webhook log and the health summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.reads import operations as q
from tests import factories as f

NOW = datetime.now(UTC)


@pytest.fixture
def ops(session):
    user, conn, account = f.make_trader(session, "carol")
    broken = f.make_connection(
        session,
        user,
        status="error",
        brokerage_name="Questrade",
        status_reason="UPSTREAM",
        error_details={"code": "3002"},
        last_successful_sync_at=NOW - timedelta(days=2),
    )
    runs = {
        "ok": f.make_run(session, user, conn, status="completed", duration_seconds=10.0, completed_at=NOW),
        "ok2": f.make_run(session, user, conn, status="completed", duration_seconds=20.0, completed_at=NOW),
        "failed": f.make_run(
            session,
            user,
            broken,
            status="failed",
            duration_seconds=40.0,
            completed_at=NOW,
            error_details={"code": "3002"},
            account_breakdown=[{"account_id": account.id}],
        ),
        "partial": f.make_run(
            session,
            user,
            conn,
            status="partial",
            duration_seconds=30.0,
            completed_at=NOW,
            error_details={"code": "throttled"},
        ),
        "old": f.make_run(
            session,
            user,
            conn,
            status="failed",
            completed_at=NOW - timedelta(days=3),
            queued_at=NOW - timedelta(days=3),
            error_details={"code": "1000"},
        ),
        "queued": f.make_run(session, user, broken, status="queued", queued_at=NOW - timedelta(minutes=10)),
    }
    issues = [f.make_issue(session, user, account), f.make_issue(session, user, account, kind="skipped")]
    f.make_webhook_event(session, user, status="processed")
    f.make_webhook_event(session, None, event_type="USER_DELETED", status="ignored")
    return user, broken, runs, issues


def test_connections_needing_attention(session, ops):
    _, broken, _, _ = ops
    df = q.connections_needing_attention(session)
    assert list(df["id"]) == [broken.id]
    assert df["username"][0] == "carol" and df["error_details"][0] == {"code": "3002"}
    assert not any("secret" in c for c in df.columns)


def test_problem_runs_lists_failed_partial_interrupted_newest_first(session, ops):
    runs = ops[2]
    df = q.problem_runs(session)
    assert set(df["id"]) == {runs["failed"].id, runs["partial"].id, runs["old"].id}
    assert int(df["id"].iloc[-1]) == runs["old"].id
    failed = df.set_index("id").loc[runs["failed"].id]
    assert failed["brokerage_name"] == "Questrade" and failed["account_breakdown"][0]["account_id"]


def test_health_summary(session, ops):
    health = q.health_summary(session, now=NOW + timedelta(seconds=1))
    assert (health.runs_24h, health.completed_24h) == (4, 2)
    assert health.success_rate_24h == 0.5
    assert health.p50_duration_seconds == 20.0 and health.p95_duration_seconds == 40.0
    assert health.errors_by_code == {"3002": 1, "throttled": 1}
    # The broken connection, and `conn`, whose partial run no later run has completed (nor is retrying).
    assert (health.active_connections, health.attention_connections) == (1, 2)
    assert health.queue_depth == 1 and 599 <= health.oldest_queued_age_seconds <= 700


def test_sync_issues_lists_the_unresolved_and_with_them_the_resolved(session, ops):
    _, _, _, issues = ops
    assert len(q.sync_issues(session)) == 2
    issues[0].resolved_at, issues[0].resolved_by = NOW, "staff-dan"  # resolving is a staff action: core.staff
    session.add(issues[0])
    session.commit()
    unresolved = q.sync_issues(session)
    assert list(unresolved["id"]) == [issues[1].id]
    everything = q.sync_issues(session, unresolved_only=False).set_index("id")
    assert everything.loc[issues[0].id, "resolved_by"] == "staff-dan"
    assert everything.loc[issues[0].id, "raw_payload"]["type"] == "BUY"


def test_webhook_log(session, ops):
    df = q.webhook_log(session)
    assert len(df) == 2 and set(df["status"]) == {"processed", "ignored"}
    assert list(q.webhook_log(session, status="ignored")["event_type"]) == ["USER_DELETED"]


def test_a_failure_its_connection_later_completed_is_superseded_and_leaves_the_attention_counts(session):
    user, conn, _ = f.make_trader(session, "erin")
    other = f.make_connection(session, user)
    failed = f.make_run(session, user, conn, status="failed", error_message="SnapTrade answered 503")
    interrupted = f.make_run(session, user, conn, status="interrupted")
    f.make_run(session, user, other, status="completed")  # another connection's success changes nothing here
    assert q.connections_needing_a_person(session) == {conn.id}
    assert q.health_summary(session).attention_connections == 1

    retry = f.make_run(session, user, conn, status="queued")
    listed = q.problem_runs(session).set_index("id")
    assert set(listed.index) == {failed.id, interrupted.id}  # still listed, as "retry queued"…
    assert set(listed["retried_by"]) == {retry.id} and listed["superseded_by"].isna().all()
    assert q.connections_needing_a_person(session) == set()  # …but in hand: nobody needs to look

    retry.status = "completed"
    session.add(retry)
    session.commit()
    assert q.problem_runs(session).empty
    history = q.problem_runs(session, include_superseded=True)
    assert dict(zip(history["id"], history["superseded_by"], strict=True)) == {
        failed.id: retry.id,
        interrupted.id: retry.id,
    }
    assert q.health_summary(session).attention_connections == 0

    again = f.make_run(session, user, conn, status="failed")  # an earlier success does not supersede a later failure
    assert list(q.problem_runs(session)["id"]) == [again.id]
    assert q.health_summary(session).attention_connections == 1
