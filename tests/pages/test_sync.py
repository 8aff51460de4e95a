"""Sync page: empty state, Sync now queues runs, the manual-sync limit explained and enforced with
a friendly message, live progress from the database, result summaries and history in words."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import select

from core.accounts.connections import create_portal_link, get_snaptrade_identity, reconcile_connections
from core.ingest.sync import execute_run
from core.jobs.queue import claim_next_job, enqueue_sync
from core.snaptrade.client import SnapTradeClient
from core.storage.models import BrokerageConnection, ManualSyncRequest, TransactionSyncLog, utcnow
from tests.factories import make_connection, make_run


def shown(at) -> str:
    kinds = ("markdown", "info", "error", "warning", "success", "caption", "subheader")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def test_without_connections_the_page_says_to_connect_first(dashboard, users):
    at = dashboard("tina", page="sync.py")
    assert not at.exception
    assert "No connection yet" in shown(at)
    assert not [b for b in at.button if b.key == "sync_now"]


def test_sync_now_queues_a_run_and_shows_its_progress(dashboard, db, users):
    make_connection(db, users["tina"], brokerage_name="Alpaca")
    at = dashboard("tina", page="sync.py")
    assert "You can start 5 more manual syncs in the next 60 s" in shown(at)
    at.button(key="sync_now").click().run()
    assert not at.exception
    assert "Sync queued for 1 connection" in [s.value for s in at.success][0]
    run = db.exec(select(TransactionSyncLog)).one()
    assert run.status == "queued" and run.trigger == "manual"
    assert "Waiting for the worker" in at.get("progress")[0].proto.text
    assert "You can start 4 more manual syncs" in shown(at)


def test_sync_now_reads_the_connections_it_can_and_a_whole_history_re_read_is_for_one_press(dashboard, db, users):
    make_connection(db, users["tina"], brokerage_name="Alpaca")
    broken = make_connection(db, users["tina"], brokerage_name="Questrade", status="needs_reconnect")
    at = dashboard("tina", page="sync.py")
    assert at.selectbox(key="sync_target").options == ["All connections", "Alpaca", "Questrade (needs reconnect)"]
    at.toggle(key="sync_full").set_value(True).run()
    at.button(key="sync_now").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Sync queued for 1 connection; progress appears below. Questrade must "
                                             "be reconnected first (Connections → Reconnect)."]  # fmt: skip
    run = db.exec(select(TransactionSyncLog)).one()
    assert run.full_sync and at.toggle(key="sync_full").value is False
    assert "Alpaca** · Sync now (whole history)" in shown(at)
    at.selectbox(key="sync_target").set_value(broken.id).run()  # picked on its own: its run asks SnapTrade again
    at.button(key="sync_now").click().run()
    assert [r.connection_id for r in db.exec(select(TransactionSyncLog).order_by(TransactionSyncLog.id))][
        -1
    ] == broken.id


def test_all_connections_needing_a_reconnect_say_so_without_spending_a_press(dashboard, db, users):
    make_connection(db, users["tina"], brokerage_name="Questrade", status="needs_reconnect")
    at = dashboard("tina", page="sync.py")
    at.button(key="sync_now").click().run()
    assert [i.value for i in at.info] == [
        "Questrade must be reconnected first: press Reconnect on the Connections page."
    ]
    assert db.exec(select(TransactionSyncLog)).first() is None and "5 more manual syncs" in shown(at)


def test_the_manual_sync_limit_is_a_friendly_message(dashboard, db, users):
    make_connection(db, users["tina"])
    for _ in range(5):
        db.add(ManualSyncRequest(user_id=users["tina"].id, requested_at=utcnow() - timedelta(seconds=10)))
    db.commit()
    at = dashboard("tina", page="sync.py")
    assert "You have used all 5 manual syncs for now" in shown(at)
    at.button(key="sync_now").click().run()
    assert not at.exception
    warning = at.warning[0].value
    assert "Try again in" in warning and "Scheduled and webhook-triggered syncs keep running" in warning
    assert "You have used all 5" not in shown(at)  # said once, in the warning
    assert db.exec(select(TransactionSyncLog)).first() is None


def test_a_running_sync_shows_phase_accounts_pages_and_counts(dashboard, db, users):
    conn = make_connection(db, users["tina"], brokerage_name="Alpaca")
    make_run(db, users["tina"], conn, status="running", phase="fetching Individual", started_at=utcnow(),
             accounts_total=2, accounts_done=1, pages_total=4, pages_done=2, transactions_fetched=1500,
             transactions_new=1200, transactions_updated=3, transactions_unchanged=297)  # fmt: skip
    at = dashboard("tina", page="sync.py")
    progress = at.get("progress")[0].proto
    assert progress.text.startswith("Fetching Individual — ") and 60 <= progress.value <= 75
    assert "1,500 fetched · 1,200 new · 3 updated · 297 unchanged · 0 skipped" in shown(at)


def test_the_progress_label_and_the_bar_agree_and_counts_carry_thousands_separators(dashboard, db, users):
    conn = make_connection(db, users["tina"], brokerage_name="Alpaca")
    # The first of two accounts, 23 of its 150 pages read: a quarter of one half of the run.
    make_run(db, users["tina"], conn, status="running", phase="fetching Individual", started_at=utcnow(),
             accounts_total=2, accounts_done=0, pages_total=150, pages_done=23, transactions_fetched=23000,
             transactions_new=22950, transactions_unchanged=50)  # fmt: skip
    at = dashboard("tina", page="sync.py")
    progress = at.get("progress")[0].proto
    label = re.fullmatch(r"Fetching Individual — (\d+) % · account 1 of 2 · page 23 of 150", progress.text)
    assert label, progress.text
    assert int(label.group(1)) == progress.value == 7  # the bar shows what the label says
    text = shown(at)
    assert "23,000 fetched · 22,950 new · 0 updated · 50 unchanged · 0 skipped" in text
    assert "pages 23/150" not in text


def test_while_snaptrade_is_retried_the_page_says_so(dashboard, db, users, sandbox):
    tina = users["tina"]
    create_portal_link(db, user_id=tina.id)  # registers tina at SnapTrade
    sandbox.create_connection(get_snaptrade_identity(db, tina.id).snaptrade_user_id, history_size=20)
    reconcile_connections(db, user_id=tina.id)
    conn = db.exec(select(BrokerageConnection)).one()
    run, _ = enqueue_sync(db, user_id=tina.id, connection_id=conn.id, trigger="manual")
    claim_next_job(db, "test-worker")
    seen: list[str] = []

    def look_at_the_page_instead_of_sleeping(seconds: float) -> None:
        seen.append(dashboard("tina", page="sync.py").get("progress")[0].proto.text)
        sandbox.set_faults()  # SnapTrade recovers: the retry succeeds

    sandbox.set_faults(error_rate=1.0)  # every request answers 500 or 503
    finished = execute_run(run.id, client=SnapTradeClient(sleep=look_at_the_page_instead_of_sleeping))
    assert re.fullmatch(r"SnapTrade answered 50[03] — retrying in \d+ s, attempt 2 of 7", seen[0]), seen
    assert finished.status == "completed" and finished.phase == "done"
    assert "retrying" not in dashboard("tina", page="sync.py").get("caption")[0].value


def test_history_lists_finished_runs_with_errors_in_words(dashboard, db, users):
    conn = make_connection(db, users["tina"], brokerage_name="Alpaca")
    now = utcnow()
    make_run(db, users["tina"], conn, status="completed", queued_at=now - timedelta(hours=2), started_at=now - timedelta(hours=2),
             duration_seconds=12.5, transactions_fetched=10, transactions_new=10)  # fmt: skip
    make_run(db, users["tina"], conn, status="failed", trigger="scheduled", queued_at=now - timedelta(hours=1),
             started_at=now - timedelta(hours=1), error_message="the brokerage login expired; reconnect it")  # fmt: skip
    at = dashboard("tina", page="sync.py")
    history = at.dataframe[0].value
    assert list(history["Status"]) == ["Failed", "Completed"]
    assert list(history["Trigger"]) == ["Scheduled", "Sync now"]
    assert "Failed: the brokerage login expired; reconnect it." == history["Result"].iloc[0]
    assert history["Duration"].iloc[1] == "12.5 s"


def test_the_summary_of_a_run_started_here_is_shown_when_it_finishes(dashboard, db, users):
    make_connection(db, users["tina"], brokerage_name="Alpaca")
    at = dashboard("tina", page="sync.py")
    at.button(key="sync_now").click().run()
    run = db.exec(select(TransactionSyncLog)).one()
    run.status, run.error_message = "partial", "one account could not be read (SnapTrade error 500)"
    db.add(run)
    db.commit()
    at.run()
    assert "Partly completed: one account could not be read (SnapTrade error 500)" in at.warning[0].value


def test_a_sync_still_reading_connections_already_moves_the_bar_and_the_history_agrees(dashboard, db, users):
    conn = make_connection(db, users["tina"], brokerage_name="Alpaca")
    make_run(db, users["tina"], conn, status="running", phase="reconciling connections", started_at=utcnow())
    at = dashboard("tina", page="sync.py")
    progress = at.get("progress")[0].proto
    assert progress.text == "Checking the connection with SnapTrade" and progress.value > 0
    assert "0 fetched · 0 new" in shown(at)
    history = at.dataframe[0].value  # drawn by the polling fragment, so it follows the bar
    assert list(history["Status"]) == ["Running"]
    assert history["Result"].iloc[0] == "Checking the connection with SnapTrade…"


def test_history_of_a_completed_run_fits_its_result_in_a_few_words(dashboard, db, users):
    conn = make_connection(db, users["tina"], brokerage_name="Alpaca")
    make_run(db, users["tina"], conn, status="completed", started_at=utcnow(), duration_seconds=2.0,
             transactions_fetched=656, transactions_unchanged=656)  # fmt: skip
    make_run(db, users["tina"], conn, status="completed", started_at=utcnow() - timedelta(minutes=5),
             queued_at=utcnow() - timedelta(minutes=5), duration_seconds=0.2, transactions_fetched=656,
             transactions_new=656)  # fmt: skip
    at = dashboard("tina", page="sync.py")
    history = at.dataframe[0].value
    assert list(history["Result"]) == ["656 fetched: all unchanged", "656 fetched: 656 new"]
    assert list(history["Duration"]) == ["2.0 s", "0.2 s"]
