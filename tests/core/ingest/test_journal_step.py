"""core.ingest.journal_step: a run's journal step, begun for each account beside the next account's import on
PostgreSQL and after the import on SQLite; either way the journal ends current, and a step that fails beside the
import is done after it."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.connections import reconcile_connections
from core.ingest import journal_step
from core.ingest.sync import execute_run
from core.jobs import queue as jobs
from core.storage.models import BrokerageAccount, BrokerageConnection
from tests.core.journal.builders import assert_journal_is_current, dirty_count
from tests.syncsupport import connect, make_user

TRIPS = "SELECT count(*) FROM journal_round_trips WHERE account_id = :a"


def _queued_initial_run(engine, sandbox, history_size: int = 2500) -> tuple[int, int, list[int]]:
    """(user, run, account ids in import order) of a SANDBOX_US connection: two accounts."""
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=history_size)
        reconcile_connections(s, user_id=uid)
        conn = s.exec(select(BrokerageConnection)).one()
        run, _ = jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="initial")
        jobs.claim_run(s, run.id, "test-worker")
        accounts = s.exec(select(BrokerageAccount.id).where(BrokerageAccount.connection_id == conn.id)
                          .order_by(BrokerageAccount.id)).all()  # fmt: skip
    return uid, run.id, list(accounts)


def _trips(engine, account_id: int) -> int:
    with engine.connect() as c:
        return c.execute(sa.text(TRIPS), {"a": account_id}).scalar()


def _assert_current(engine, uid: int) -> None:
    with Session(engine) as s:
        assert_journal_is_current(s, uid)


def test_the_first_accounts_journal_is_stored_while_the_second_imports_on_postgresql_only(engine, sandbox):
    uid, run_id, (first, second) = _queued_initial_run(engine, sandbox)
    postgres = engine.dialect.name == "postgresql"
    seen_during_second: list[tuple[int, int]] = []

    def on_progress(run) -> None:
        if run.accounts_done != 1 or seen_during_second:
            return  # only once, on a page of the second account
        # On PostgreSQL the first account's step runs beside this import: wait (the import waits with us) until
        # its round trips are committed. On SQLite it runs after the import, so nothing is there to wait for.
        deadline = time.monotonic() + (30 if postgres else 0)
        while (found := _trips(engine, first)) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen_during_second.append((found, _trips(engine, second)))

    run = execute_run(run_id, engine=engine, on_progress=on_progress)
    assert run.status == "completed"
    [(first_trips, second_trips)] = seen_during_second
    assert second_trips == 0, "the second account's journal waits for its import"
    if postgres:
        assert first_trips > 0, "the first account's journal should be stored while the second account imports"
    else:
        assert first_trips == 0, "SQLite has one writer: the journal step runs after the import"
    assert _trips(engine, first) > 0 and _trips(engine, second) > 0
    _assert_current(engine, uid)


def test_each_accounts_step_is_logged_with_its_account_id(engine, sandbox, caplog):
    """An operator follows which account's journal was updated, and in which thread: one line per account on
    PostgreSQL (the first account's from the step's own thread), one line for both on SQLite."""
    _uid, run_id, (first, second) = _queued_initial_run(engine, sandbox, history_size=1200)
    with caplog.at_level("INFO", logger="tradistry.journal"):
        assert execute_run(run_id, engine=engine).status == "completed"
    lines = [(r.threadName, r.getMessage()) for r in caplog.records if r.getMessage().startswith("journal: ")]
    if engine.dialect.name == "postgresql":
        assert [(t.startswith("journal-step"), f"account(s) [{a}]" in m) for (t, m), a in zip(lines, (first, second))] == [
            (True, True), (False, True)]  # fmt: skip
    else:
        assert len(lines) == 1 and f"account(s) [{first}, {second}]" in lines[0][1]


def test_every_positions_request_of_the_step_is_counted_in_the_run(engine, sandbox):
    _uid, run_id, accounts = _queued_initial_run(engine, sandbox, history_size=1200)
    sandbox.reset_request_log()
    run = execute_run(run_id, engine=engine)
    log = sandbox.request_log()
    positions = [r for r in log if r["path"].endswith("/positions/all")]
    assert run.status == "completed" and len(positions) == len(accounts)
    assert run.api_requests == len(log), "requests made from the journal's thread count like the import's"


def test_a_step_that_cannot_run_beside_the_import_runs_after_it(engine, sandbox, monkeypatch):
    """A step that fails before its upkeep (here: its statistics) is done after the import on the run's own
    session; the journal ends current either way."""
    uid, run_id, _accounts = _queued_initial_run(engine, sandbox, history_size=1200)
    real, failed = journal_step.analyze_if_stale, []

    def analyze(session, *args):
        if threading.current_thread() is not threading.main_thread():
            failed.append(threading.current_thread().name)
            raise RuntimeError("connection lost")
        return real(session, *args)

    monkeypatch.setattr(journal_step, "analyze_if_stale", analyze)
    run = execute_run(run_id, engine=engine)
    assert run.status == "completed"
    assert bool(failed) == (engine.dialect.name == "postgresql")  # only PostgreSQL begins a step beside the import
    _assert_current(engine, uid)


def test_a_run_that_fails_while_a_step_runs_beside_it_waits_for_that_step(engine, sandbox, monkeypatch):
    """The second account's import breaks while the first account's step runs: the run returns only after that
    step ended, and the step's journal is whole."""
    uid, run_id, (first, second) = _queued_initial_run(engine, sandbox)
    postgres = engine.dialect.name == "postgresql"
    step_running, step_may_end, ended = threading.Event(), threading.Event(), []
    real = journal_step.after_sync_run

    def slow_step(session, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            step_running.set()
            step_may_end.wait(30)
        real(session, **kwargs)
        ended.append(threading.current_thread().name)

    def on_progress(run) -> None:
        if run.accounts_done != 1:
            return
        if step_running.wait(30 if postgres else 0):
            threading.Timer(1.0, step_may_end.set).start()  # the step ends well after the run has failed
        raise RuntimeError("disk full")  # an unexpected error in the middle of the second account's import

    monkeypatch.setattr(journal_step, "after_sync_run", slow_step)
    run = execute_run(run_id, engine=engine, on_progress=on_progress)
    step_may_end.set()
    assert run.status == "failed"
    if not postgres:
        assert not step_running.is_set() and ended == []  # no step beside the import, and none after a failure
        return
    assert len(ended) == 1, "the run returned before the step it began had ended"
    assert _trips(engine, first) > 0 and _trips(engine, second) == 0
    with Session(engine) as s:
        assert dirty_count(s, uid) > 0, "the second account's pairs stay marked for the next run"
