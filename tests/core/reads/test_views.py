"""core.reads.views wording and progress: what the Sync and Connections pages say about runs and schedules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core.reads import views

NOW = datetime(2026, 11, 24, 8, 36, tzinfo=UTC)
RUN = views.RunRow(
    run_id=1, connection_id=1, brokerage_name="Sandbox US Brokerage", trigger="manual", status="running", phase=None,
    full_sync=True, accounts_done=0, accounts_total=0, pages_done=0, pages_total=0, fetched=0, new=0, updated=0,
    unchanged=0, skipped=0, error_message=None, queued_at=NOW, started_at=NOW, completed_at=None, duration_seconds=None,
)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status": "queued"}, 0.0),
        ({}, views.RUN_STARTED_FRACTION),  # reading connections: a sliver, not an empty bar
        ({"accounts_total": 2}, views.RUN_STARTED_FRACTION),  # accounts known, nothing fetched yet
        ({"accounts_total": 2, "pages_total": 4, "pages_done": 1}, 0.125),  # 1 of 4 pages of the first account
        # Second account: the first one's 2 pages are in the breakdown; 1 of its 2 pages is done.
        (
            {
                "accounts_total": 2,
                "accounts_done": 1,
                "accounts_finished": 1,
                "pages_finished": 2,
                "pages_total": 4,
                "pages_done": 3,
            },
            0.75,
        ),
        ({"accounts_total": 2, "accounts_done": 2, "pages_total": 4, "pages_done": 4}, 0.99),  # finishing
        ({"status": "completed"}, 1.0),
    ],
)
def test_progress_moves_from_the_first_phase_and_never_reads_done_early(changes, expected):
    assert replace(RUN, **changes).fraction == pytest.approx(expected)


def test_progress_never_goes_backwards_when_the_next_account_reveals_its_pages():
    first_done = replace(RUN, accounts_total=2, accounts_done=1, accounts_finished=1, pages_finished=1,
                         pages_total=1, pages_done=1)  # fmt: skip
    second_started = replace(first_done, pages_total=5)
    assert second_started.fraction >= first_done.fraction == 0.5


def test_completed_runs_are_summed_up_in_a_few_words():
    done = replace(RUN, status="completed", fetched=656, unchanged=656)
    assert views.run_result_brief(done) == "656 fetched: all unchanged"
    assert views.run_result_brief(replace(done, new=3, unchanged=653)) == "656 fetched: 3 new"
    assert views.run_result_brief(replace(done, fetched=0, unchanged=0)) == "Nothing new at SnapTrade"
    failed = replace(RUN, status="failed", error_message="login expired")
    assert views.run_result_brief(failed) == "Failed: login expired."


def test_a_stored_message_that_ends_its_sentence_does_not_end_the_outcome_twice():
    message = "Unable to sync with brokerage account. Invalid response from Brokerage API."  # SnapTrade's 3002
    failed = replace(RUN, status="failed", error_message=message)
    assert views.run_outcome_sentence(failed) == f"Failed: {message}"
    partial = replace(RUN, status="partial", error_message="Account 2 could not be read. ", new=1)
    assert views.run_outcome_sentence(partial).startswith("Partly completed: Account 2 could not be read. Imported")


def _card(**changes) -> views.ConnectionCard:
    card = views.ConnectionCard(
        connection_id=1, brokerage_name="Alpaca", status="active", status_reason=None, disabled_at=None,
        error_message=None, last_sync_at=None, last_successful_sync_at=None, next_sync_at=NOW, auto_sync_enabled=True,
        sync_frequency_minutes=1440, created_at=NOW,
    )  # fmt: skip
    return replace(card, **changes)


def test_only_active_connections_with_auto_sync_have_a_next_sync_time():
    assert _card().next_sync_note is None
    assert _card(status="needs_reconnect").next_sync_note == "paused until reconnected"
    assert _card(status="error").next_sync_note == "paused while the connection is in error"
    assert _card(auto_sync_enabled=False).next_sync_note == "auto-sync is off"
