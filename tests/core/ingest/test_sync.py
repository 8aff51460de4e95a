"""The sync engine against the sandbox over real HTTP and the real SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.storage.models import BrokerageAccount, BrokerageConnection, BrokerageTransaction, SyncIssue
from tests.gccount import young_collections
from tests.syncsupport import assert_matches_ground_truth, connect, make_user, snaptrade_user_id, sync_now


def test_first_sync_stores_exactly_what_the_sandbox_holds_and_second_rewrites_nothing(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=2500)
        connect(s, sandbox, uid, broker="SANDBOX_CA", history_size=400)
    runs = sync_now(engine, uid, trigger="initial")
    assert [r.status for r in runs] == ["completed", "completed"]
    assert sum(r.transactions_new for r in runs) > 2500
    with Session(engine) as s:
        assert_matches_ground_truth(s, sandbox, uid)
        before = {t.id: t.updated_at for t in s.exec(select(BrokerageTransaction))}
    again = sync_now(engine, uid, full=True)
    assert all(r.status == "completed" for r in again)
    assert sum(r.transactions_new for r in again) == 0 and sum(r.transactions_updated for r in again) == 0
    assert sum(r.transactions_unchanged for r in again) == len(before)
    with Session(engine) as s:
        assert {t.id: t.updated_at for t in s.exec(select(BrokerageTransaction))} == before


def test_exact_decimals_dates_and_options_survive_the_round_trip(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=1500)
        connect(s, sandbox, uid, broker="SANDBOX_CRYPTO", history_size=300)
        connect(s, sandbox, uid, broker="SANDBOX_DATEONLY", history_size=300)
    sync_now(engine, uid)
    with Session(engine) as s:
        rows = list(s.exec(select(BrokerageTransaction).where(BrokerageTransaction.user_id == uid)))
        # Padded and unpadded OCC spellings of one contract collapse to one canonical ticker.
        raw_spellings = defaultdict(set)
        for r in rows:
            if r.option_ticker:
                raw_spellings[r.option_ticker].add(r.raw["option_symbol"]["ticker"])
        assert any(len(v) > 1 for v in raw_spellings.values()), "sandbox should serve both OCC spellings"
        # Date-only rows keep their written date (no shift to the previous day).
        for r in rows:
            written = (r.raw.get("trade_date") or r.raw.get("settlement_date"))[:10]
            assert r.trade_date.isoformat() == written
        assert any(r.trade_date_from_settlement for r in rows), "a null trade_date falls back to settlement"
        # Crypto quantities keep every decimal; dividends keep their sign.
        assert any(r.quantity is not None and -r.quantity.as_tuple().exponent >= 8 for r in rows)
        assert all(r.amount > 0 for r in rows if r.transaction_type == "DIVIDEND" and r.amount is not None)
        # Two genuine same-day identical trades stay two rows.
        fp = Counter((r.account_id, r.fingerprint) for r in rows if r.transaction_type in ("BUY", "SELL"))
        assert any(n >= 2 for n in fp.values())
        assert any(r.transaction_type == "OTHER" and r.raw_type for r in rows)


def test_incremental_sync_picks_up_new_and_backdated_activities(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=800)
    sync_now(engine, uid)
    with Session(engine) as s:
        account_id = s.exec(select(BrokerageAccount.snaptrade_account_id)).first()
    sandbox.advance_day()
    late = sandbox.add_backdated(account_id, count=5, days_back=5)
    runs = sync_now(engine, uid, trigger="scheduled")
    assert runs[0].status == "completed" and runs[0].transactions_new >= len(late)
    assert runs[0].transactions_fetched < 800, "incremental sync re-reads only the overlap window"
    with Session(engine) as s:
        ids = {t.snaptrade_activity_id for t in s.exec(select(BrokerageTransaction))}
        assert set(late) <= ids
        assert_matches_ground_truth(s, sandbox, uid)


def test_rekeyed_ids_are_merged_not_duplicated(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=600)
    sync_now(engine, uid)
    with Session(engine) as s:
        account_id = s.exec(select(BrokerageAccount.snaptrade_account_id)).first()
        count_before = s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one()
    pairs = sandbox.rekey(account_id, count=3)
    runs = sync_now(engine, uid, full=True)
    assert runs[0].status == "completed"
    with Session(engine) as s:
        ids = {t.snaptrade_activity_id for t in s.exec(select(BrokerageTransaction))}
        assert s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one() == count_before
        for old, new in pairs:
            assert new in ids and old not in ids
        merged = s.exec(select(SyncIssue).where(SyncIssue.kind == "merged")).all()
        assert len(merged) == len(pairs)
        assert_matches_ground_truth(s, sandbox, uid)


def test_a_merged_rekeyed_row_takes_the_new_raw_records_option_flag_with_it(engine):
    """The fingerprint leaves out raw's is_mini_option: when a re-keyed activity's record changes it, the stored
    row takes the new record and the option_mini the journal reads from it, never one without the other."""
    from datetime import UTC, datetime

    from core.ingest.page_write import RunInserts
    from core.ingest.rekey import merge_rekeyed
    from tests import factories as f

    opt = "AAPL  261218C00240000"
    with Session(engine, expire_on_commit=False) as s:
        _, _, acct = f.make_trader(s)
        shape = dict(transaction_type="BUY", symbol="AAPL", security_type="option", option_ticker=opt,
                     fingerprint="same-content")  # fmt: skip
        old = f.transaction_row(
            acct, snaptrade_activity_id="old-id", raw={"option_symbol": {"is_mini_option": False}}, **shape
        )
        new = f.transaction_row(
            acct, snaptrade_activity_id="new-id", raw={"option_symbol": {"is_mini_option": True}}, **shape
        )
        f.bulk_transactions(s, [old])
        f.bulk_transactions(s, [new])
        merged = merge_rekeyed(s, account=acct, inserted=RunInserts(since=datetime.now(UTC), ids={"new-id"}),
                               seen=set(), run_id=None)  # fmt: skip
        s.commit()
        stored = s.execute(sa.select(BrokerageTransaction.snaptrade_activity_id, BrokerageTransaction.option_mini,
                                     BrokerageTransaction.raw)).all()  # fmt: skip
    assert merged == 1 and [(a, m) for a, m, _ in stored] == [("new-id", "true")]
    assert stored[0][2] == {"option_symbol": {"is_mini_option": True}}


def test_scheduled_sync_with_nothing_new_costs_at_most_two_requests(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=3000)
    sandbox.reset_request_log()
    first = sync_now(engine, uid, trigger="initial")[0]
    activity_requests = sandbox.request_counts().get("/accounts/{accountId}/activities", 0)
    with Session(engine) as s:
        truth = sandbox.ground_truth(snaptrade_user_id(s, uid))
    assert activity_requests == sum(-(-len(v) // 1000) for v in truth.values())  # ⌈N / 1000⌉ per account, no more
    # plus a small constant: connections + accounts lists, one balances and one positions read per account
    assert sandbox.request_counts().get("/accounts/{accountId}/positions/all", 0) == len(truth)
    assert first.api_requests == activity_requests + 2 + 2 * len(truth)
    sandbox.reset_request_log()
    with Session(engine, expire_on_commit=False) as s:
        from core.ingest.sync import execute_run
        from core.jobs import queue as jobs

        conn = s.exec(select(BrokerageConnection)).one()
        run, _ = jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="scheduled")
        jobs.claim_run(s, run.id, "w")
    done = execute_run(run.id, engine=engine)
    assert done.status == "completed"
    assert sum(sandbox.request_counts().values()) <= 2
    assert done.api_requests <= 2
    assert "/accounts/{accountId}/positions/all" not in sandbox.request_counts()


def test_disabled_connection_is_marked_for_reconnect_while_others_still_sync(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        broken = connect(s, sandbox, uid, broker="SANDBOX_US", history_size=300)
        connect(s, sandbox, uid, broker="SANDBOX_CA", history_size=300)
    sync_now(engine, uid)
    with Session(engine) as s:
        kept = s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one()
    sandbox.disable_connection(broken, reason="Brokerage password changed")
    sandbox.advance_day()
    runs = {r.connection_id: r for r in sync_now(engine, uid)}
    with Session(engine) as s:
        conn = s.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == broken)).one()
        other = s.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id != broken)).one()
        assert conn.status == "needs_reconnect" and conn.disabled_at is not None and conn.status_reason
        assert runs[conn.id].status == "failed" and "reconnect" in runs[conn.id].error_message
        assert runs[other.id].status == "completed"
        assert s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one() >= kept


def test_malformed_records_land_in_the_ledger_and_the_rest_syncs(engine, sandbox):
    sandbox.set_faults(malformed_rate=0.05, seed=3)
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=1200)
    run = sync_now(engine, uid)[0]
    assert run.status == "completed" and run.transactions_skipped > 0
    with Session(engine) as s:
        issues = s.exec(select(SyncIssue).where(SyncIssue.kind == "quarantined")).all()
        assert len(issues) == run.transactions_skipped
        assert all(i.reason and i.raw_payload is not None for i in issues)
        assert_matches_ground_truth(s, sandbox, uid)
    again = sync_now(engine, uid, full=True)[0]
    with Session(engine) as s:  # the same bad records are not ledgered twice
        assert s.exec(
            select(sa.func.count()).select_from(SyncIssue).where(SyncIssue.kind == "quarantined")
        ).one() == len(issues)
    assert again.transactions_new == 0


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 0.15},
        {"drop_rate": 0.1},
        {"rate_limit": {"customer_limit": 12, "account_limit": 10, "window": 2}},
    ],
)
def test_faults_are_survived_and_the_result_converges(engine, sandbox, faults, monkeypatch):
    monkeypatch.setenv("HTTP_BACKOFF_BASE_SECONDS", "0.05")
    monkeypatch.setenv("HTTP_MAX_RETRIES", "10")
    from core.settings import reset_settings_cache

    reset_settings_cache()
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=4000)
    sandbox.set_faults(seed=5, **faults)
    run = sync_now(engine, uid)[0]
    assert run.status in ("completed", "partial")
    if run.status == "partial":
        assert run.error_message
    sandbox.set_faults()
    sync_now(engine, uid, full=True)
    with Session(engine) as s:
        assert_matches_ground_truth(s, sandbox, uid)


def test_client_paces_itself_by_the_rate_limit_headers_before_being_throttled(engine, sandbox):
    """With a small customer budget, the X-RateLimit-* headers slow the client down instead of 429s."""
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_CRYPTO", history_size=14000)
    sandbox.set_faults(rate_limit={"customer_limit": 8, "account_limit": 1000, "window": 2})
    sandbox.reset_request_log()
    run = sync_now(engine, uid)[0]
    log = sandbox.request_log()
    throttled = sum(1 for r in log if r["status"] == 429)
    assert run.status == "completed"
    assert len(log) >= 16, "enough requests to cross the budget twice"
    assert throttled <= 1, f"{throttled} requests were throttled: pacing did not work"


def test_a_mix_of_every_fault_ends_completed_or_partial_with_a_reason_then_converges(engine, sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_BACKOFF_BASE_SECONDS", "0.02")
    monkeypatch.setenv("HTTP_MAX_RETRIES", "3")
    from core.settings import reset_settings_cache

    reset_settings_cache()
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=3000)
        connect(s, sandbox, uid, broker="SANDBOX_CA", history_size=1500)
    sandbox.set_faults(error_rate=0.2, drop_rate=0.1, latency_ms=30, malformed_rate=0.02, seed=21,
                       rate_limit={"customer_limit": 30, "account_limit": 10, "window": 1})  # fmt: skip
    runs = sync_now(engine, uid)
    for run in runs:
        assert run.status in ("completed", "partial"), (run.status, run.error_message)
        if run.status == "partial":
            assert run.error_message and any(a["status"] == "failed" and a["message"] for a in run.account_breakdown)
    sandbox.set_faults(malformed_rate=0.02, seed=21)
    assert all(r.status == "completed" for r in sync_now(engine, uid))
    with Session(engine) as s:
        assert_matches_ground_truth(s, sandbox, uid)


# --------------------------------------------------------------------------- resume point, unreadable pages, ledger


def _first_run(engine, uid, **kw):
    """Reconcile, queue and claim one run of the user's only connection: (run id, connection id)."""
    from core.accounts.connections import reconcile_connections
    from core.jobs import queue as jobs

    with Session(engine, expire_on_commit=False) as s:
        reconcile_connections(s, user_id=uid)
        conn = s.exec(select(BrokerageConnection).where(BrokerageConnection.user_id == uid)).one()
        run, _ = jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="initial", **kw)
        jobs.claim_run(s, run.id, "test-worker")
    return run.id, conn.id


def quick_retries(settings_env, **more) -> None:
    from core.settings import reset_settings_cache

    for name, value in {"HTTP_BACKOFF_BASE_SECONDS": "0.01", **more}.items():
        settings_env.setenv(name, value)
    reset_settings_cache()


def activity_offsets(sandbox) -> list[int]:
    """The offsets of the activities requests in the sandbox's request log, in order."""
    return [
        int(e["params"].get("offset", 0)) for e in sandbox.request_log() if e["path_template"].endswith("/activities")
    ]


def test_the_saved_resume_point_advances_with_every_committed_page(engine, sandbox):
    from core.ingest.sync import execute_run
    from core.storage.models import TransactionSyncLog

    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_CRYPTO", history_size=3500)
    run_id, _ = _first_run(engine, uid)
    saved = []

    def read_checkpoint(_run):  # called after each page's commit: what another process would see
        with Session(engine) as s:
            cp = s.get(TransactionSyncLog, run_id).checkpoint
            saved.append([a["offset"] for a in cp["accounts"].values()])

    run = execute_run(run_id, engine=engine, on_progress=read_checkpoint)
    assert run.status == "completed"
    assert saved == [[1000], [2000], [3000], [3500]]


@pytest.mark.parametrize("kind", ["truncated", "html"])
def test_an_unreadable_page_is_retried_and_the_run_completes(engine, sandbox, settings_env, kind):
    quick_retries(settings_env)
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_CRYPTO", history_size=2500)
    sandbox.corrupt_pages(count=1, kind=kind, after=1)  # the second page comes back unreadable once
    sandbox.reset_request_log()
    [run] = sync_now(engine, uid)
    assert run.status == "completed", run.error_message
    assert activity_offsets(sandbox) == [0, 1000, 1000, 2000]
    with Session(engine) as s:
        assert_matches_ground_truth(s, sandbox, uid)


def test_a_page_that_stays_unreadable_ends_the_run_partial_with_a_short_reason(engine, sandbox, settings_env):
    quick_retries(settings_env, HTTP_MAX_RETRIES="2")
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_CRYPTO", history_size=2500)
    sandbox.corrupt_pages(count=-1, after=1)
    sandbox.reset_request_log()
    [run] = sync_now(engine, uid)
    assert activity_offsets(sandbox) == [0, 1000, 1000, 1000]  # our retry policy: 1 + 2 retries
    assert run.status == "partial" and run.transactions_new == 1000
    assert "not valid JSON" in run.error_message and len(run.error_message) < 200, run.error_message
    sandbox.set_faults()
    assert [r.status for r in sync_now(engine, uid)] == ["completed"]
    with Session(engine) as s:
        assert_matches_ground_truth(s, sandbox, uid)


def test_a_quarantined_record_that_later_imports_cleanly_is_resolved_naming_the_run(engine, sandbox):
    sandbox.set_faults(malformed_rate=0.05, seed=3)
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=1200)
    sync_now(engine, uid)
    with Session(engine) as s:
        issues = s.exec(select(SyncIssue).where(SyncIssue.kind == "quarantined")).all()
    with_id = {i.id for i in issues if i.snaptrade_activity_id}
    assert with_id and len(with_id) < len(issues), "some bad records have an id, some have none"
    sandbox.set_faults()  # SnapTrade now serves those records intact
    [fixer] = sync_now(engine, uid, full=True)
    assert fixer.status == "completed"
    with Session(engine) as s:
        after = {i.id: i for i in s.exec(select(SyncIssue).where(SyncIssue.kind == "quarantined"))}
        stored = set(s.exec(select(BrokerageTransaction.snaptrade_activity_id)))
    for issue_id in with_id:
        assert after[issue_id].resolved_at is not None and after[issue_id].resolved_by == f"sync run #{fixer.id}"
        assert after[issue_id].snaptrade_activity_id in stored
    assert all(after[i].resolved_at is None for i in after if i not in with_id), "no id: nothing proves it was fixed"


def test_a_fetching_sync_that_finds_nothing_new_reads_no_rows_by_creation_time(engine, sandbox):
    """Re-key detection starts from the rows the page writes inserted, so a sync that fetches the account
    but stores nothing costs what its pages cost: no statement selects the account's rows by created_at
    (which reads every row of the account: the old `created_at >= t0` query, O(history))."""
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=1500)
    sync_now(engine, uid, trigger="initial")
    with Session(engine) as s:  # a webhook hint: the account is fetched although SnapTrade reports no new sync
        s.exec(sa.update(BrokerageAccount).values(has_pending_hint=True))
        s.commit()
    statements = []

    def capture(conn, cursor, statement, *args):
        if "brokerage_transactions" in statement:
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        [run] = sync_now(engine, uid)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert run.status == "completed" and run.transactions_fetched > 0 and run.transactions_new == 0
    assert run.pages_done >= 1  # the account was fetched and its pages written
    filters = [re.split(r"\sWHERE\s", s, maxsplit=1)[1] for s in statements if re.search(r"\sWHERE\s", s)]
    assert filters, "the page lookups read brokerage_transactions"
    assert not [f for f in filters if "created_at" in f], "a statement filters the account's rows by created_at"


def test_rekeyed_rows_an_interrupted_attempt_stored_are_merged_when_the_run_resumes(engine, sandbox):
    """The first attempt stores some re-keyed rows and stops between pages; the resumed attempt re-reads the
    window, finds those rows already stored by this run (its page lookups say so) and merges them too."""
    from core.ingest.sync import execute_run
    from core.jobs import queue as jobs

    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_CRYPTO", history_size=3500)  # one account, 4 pages
    sync_now(engine, uid)
    with Session(engine, expire_on_commit=False) as s:
        account_id = s.exec(select(BrokerageAccount.snaptrade_account_id)).one()
        count_before = s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one()
        conn = s.exec(select(BrokerageConnection)).one()
        pairs = sandbox.rekey(account_id, count=40)
        run, _ = jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="manual", full=True)
        jobs.claim_run(s, run.id, "w")
    pages = {"done": 0}
    stopped = execute_run(run.id, engine=engine, should_stop=lambda: pages["done"] >= 2,
                          on_progress=lambda r: pages.update(done=r.pages_done))  # fmt: skip
    assert stopped.status == "queued"
    with Session(engine, expire_on_commit=False) as s:
        stored = set(s.exec(select(BrokerageTransaction.snaptrade_activity_id)))
        assert 0 < len(stored & {new for _, new in pairs}) < len(pairs), "the first attempt stored some new ids"
        jobs.claim_run(s, run.id, "w")
    done = execute_run(run.id, engine=engine)
    assert done.status == "completed"
    with Session(engine) as s:
        ids = set(s.exec(select(BrokerageTransaction.snaptrade_activity_id)))
        assert s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one() == count_before
        assert all(new in ids and old not in ids for old, new in pairs)
        assert len(s.exec(select(SyncIssue).where(SyncIssue.kind == "merged")).all()) == len(pairs)
        assert_matches_ground_truth(s, sandbox, uid)


def test_a_run_sets_off_few_cyclic_garbage_collections_and_restores_the_thresholds(engine, sandbox):
    """A page's thousands of new containers are freed by reference counting: with CPython's default threshold
    they still set off a dozen young collections per page, and every few pages a full one (core.gcpace)."""
    import gc

    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=6000)
    before = gc.get_threshold()
    with young_collections() as young:
        runs = sync_now(engine, uid, trigger="initial")
    assert [r.status for r in runs] == ["completed"] and runs[0].transactions_new >= 6000
    assert gc.get_threshold() == before
    assert len(young) < 30, f"{len(young)} young collections during a sync of 12,000 activities (two accounts of 6,000)"
