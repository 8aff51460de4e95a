"""Command line: `python -m core migrate | users add | connect | sync | export | worker | rotate-key | banner`.

These commands and their output are a contract other tools rely on (see the README).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import signal
import sys
import time

from sqlmodel import Session, select

from core.db import get_engine
from core.settings import ConfigurationError, get_settings
from core.snaptrade import SnapTradeError, install_log_redaction, redact

EXPORT_KEYS = (
    "snaptrade_activity_id", "snaptrade_account_id", "transaction_type", "raw_type", "symbol", "option_ticker",
    "quantity", "price", "amount", "fee", "currency", "fx_rate", "trade_date", "settlement_date", "description",
    "external_reference_id",
)  # fmt: skip


def _user_id(session: Session, username: str) -> int:
    from core.auth import get_user

    user = get_user(session, username)
    if user is None:
        raise SystemExit(f"error: no user named {username!r} (create one with `python -m core users add`)")
    return user.id


def cmd_migrate(args) -> int:
    from core import migrate

    migrate.upgrade()
    print(f"database is at the latest schema ({_safe_url()})")
    return 0


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().resolved_database_url).render_as_string(hide_password=True)


def cmd_users_add(args) -> int:
    from core.auth import create_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            user = create_user(session, username=args.username, password=password, role=args.role,
                               email=args.email, name=args.name)  # fmt: skip
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"created {user.role} {user.username}")
    return 0


def cmd_connect(args) -> int:
    from core.connections import create_portal_link

    with Session(get_engine(), expire_on_commit=False) as session:
        uid = _user_id(session, args.username)
        url = create_portal_link(session, user_id=uid, broker=args.broker, redirect_url=args.redirect)
    print("Open this link within 5 minutes to connect a brokerage:", file=sys.stderr)
    print(url)
    return 0


def _bar(done: int, total: int, width: int = 30) -> str:
    frac = 0.0 if total <= 0 else min(1.0, done / total)
    filled = int(frac * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {frac * 100:5.1f}%"


def _progress_line(run) -> str:
    return (f"\r{_bar(run.pages_done, run.pages_total)} {run.phase or run.status:<28.28} "
            f"accounts {run.accounts_done}/{run.accounts_total} pages {run.pages_done}/{run.pages_total} "
            f"fetched {run.transactions_fetched} new {run.transactions_new} updated {run.transactions_updated} "
            f"skipped {run.transactions_skipped}")  # fmt: skip


def cmd_sync(args) -> int:
    from core import jobs
    from core.connections import reconcile_connections
    from core.models import BrokerageConnection
    from core.worker import Worker

    engine = get_engine()
    with Session(engine, expire_on_commit=False) as session:
        uid = _user_id(session, args.username)
        reconcile_connections(session, user_id=uid)
        query = select(BrokerageConnection).where(BrokerageConnection.user_id == uid,
                                                  BrokerageConnection.status != "disconnected")  # fmt: skip
        if args.connection:
            query = query.where(BrokerageConnection.authorization_id == args.connection)
        conns = session.exec(query).all()
        if not conns:
            print("error: no connection to sync" + (f" with id {args.connection}" if args.connection else ""), file=sys.stderr)
            return 2
        try:
            runs = jobs.request_manual_sync(session, user_id=uid, connection_id=conns[0].id if args.connection else None,
                                            full=args.full)
        except (jobs.ManualSyncLimitExceeded, jobs.NothingToSync) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
    worker = Worker(engine=engine, scheduler=False)
    for sig in (signal.SIGINT, signal.SIGTERM):  # both end the sync cleanly: interrupted, resumable
        signal.signal(sig, lambda *_: worker.stop())
    statuses = []
    for run in runs:
        if worker.stopping:
            break
        r = _drive_run(engine, worker, run.id)
        print(_progress_line(r), file=sys.stderr)
        print(f"run {r.id}: {r.status} — fetched {r.transactions_fetched}, new {r.transactions_new}, "
              f"updated {r.transactions_updated}, unchanged {r.transactions_unchanged}, "
              f"in issues ledger {r.transactions_skipped}, {r.api_requests} API requests"
              + (f" — {r.error_message}" if r.error_message else ""))  # fmt: skip
        statuses.append(r.status)
    if worker.stopping:
        print("stopped on request; the next `sync` resumes where this one stopped", file=sys.stderr)
    return 0 if statuses and all(s == "completed" for s in statuses) and not worker.stopping else 1


STOP_GRACE_SECONDS = 20.0


def _drive_run(engine, worker, run_id: int):
    """Run it here when it is ours to claim, else follow the worker that has it; when that worker is gone
    (a stale heartbeat, the worker's own rule) take the run over and resume it here. Returns the run."""
    from core import jobs
    from core.models import ACTIVE_SYNC_STATUSES, TransactionSyncLog

    while True:
        with Session(engine, expire_on_commit=False) as session:
            if jobs.claim_run(session, run_id, worker.worker_id) is not None:
                _execute_here(engine, worker, run_id)
                return session.get(TransactionSyncLog, run_id, populate_existing=True)
            run = session.get(TransactionSyncLog, run_id)
            if run.status not in ACTIVE_SYNC_STATUSES or worker.stopping:
                return run
            successor = jobs.take_over_stale_run(session, run_id)
        if successor is not None:
            print(f"\nrun {run_id}: its worker stopped answering; resuming it here as run {successor.id}", file=sys.stderr)
            run_id = successor.id
            continue
        _print_progress(engine, run_id)
        time.sleep(0.5)


def _execute_here(engine, worker, run_id: int) -> None:
    import threading

    t = threading.Thread(target=worker.execute, args=(run_id, "interrupted"), daemon=True)
    t.start()
    stop_seen = None
    while t.is_alive():
        _print_progress(engine, run_id)
        t.join(0.25)
        if worker.stopping:
            stop_seen = stop_seen or time.monotonic()
            if time.monotonic() - stop_seen > STOP_GRACE_SECONDS:
                # Stuck (a request or the database not answering): the run's heartbeat stops with this
                # process, and the next sync takes it over as stale.
                print(f"\nrun {run_id} did not stop within {STOP_GRACE_SECONDS:.0f} s; leaving it to stale-run recovery",
                      file=sys.stderr)  # fmt: skip
                return


def _print_progress(engine, run_id: int) -> None:
    from core.models import TransactionSyncLog

    with Session(engine) as session:
        r = session.get(TransactionSyncLog, run_id)
        if r is not None:
            print(_progress_line(r), end="", file=sys.stderr, flush=True)


def export_rows(session: Session, user_id: int):
    """Every stored transaction of a user, oldest first, as plain dicts with exact decimal strings."""
    import sqlalchemy as sa

    from core.models import BrokerageAccount
    from core.models import BrokerageTransaction as Tx
    from core.types import format_decimal

    query = (
        sa.select(Tx, BrokerageAccount.snaptrade_account_id)
        .join(BrokerageAccount, BrokerageAccount.id == Tx.account_id)
        .where(Tx.user_id == user_id)
        .order_by(Tx.trade_date, Tx.id)
        .execution_options(yield_per=2000)
    )
    for tx, account_id in session.execute(query):
        row = {}
        for key in EXPORT_KEYS:
            value = account_id if key == "snaptrade_account_id" else getattr(tx, key)
            if hasattr(value, "as_tuple"):
                value = format_decimal(value)
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            row[key] = value
        yield row


def cmd_export(args) -> int:
    import csv

    with Session(get_engine(), expire_on_commit=False) as session:
        uid = _user_id(session, args.username)
        out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
        try:
            if args.format == "json":
                out.write("[")
                for i, row in enumerate(export_rows(session, uid)):
                    out.write(("," if i else "") + "\n" + json.dumps(row))
                out.write("\n]\n")
            else:
                writer = csv.DictWriter(out, fieldnames=list(EXPORT_KEYS))
                writer.writeheader()
                for row in export_rows(session, uid):
                    writer.writerow({k: "" if v is None else v for k, v in row.items()})
        finally:
            if out is not sys.stdout:
                out.close()
    return 0


def cmd_worker(args) -> int:
    from core.worker import Worker

    worker = Worker(poll_seconds=args.poll)
    signal.signal(signal.SIGTERM, lambda *_: worker._stop.set())
    signal.signal(signal.SIGINT, lambda *_: worker._stop.set())
    print(f"worker {worker.worker_id} running; SIGTERM stops it cleanly", file=sys.stderr)
    worker.run_forever()
    return 0


def cmd_rotate_key(args) -> int:
    from core.crypto import SecretDecryptionError, rotate_secrets

    with Session(get_engine()) as session:
        try:
            n = rotate_secrets(session)
            session.commit()
        except SecretDecryptionError as exc:
            session.rollback()
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"re-encrypted {n} SnapTrade user secret(s) under the first ENCRYPTION_KEYS key; older keys can now be removed")
    return 0


def cmd_banner(args) -> int:
    settings = get_settings()
    print(f"Tradistry Broker Sync → {settings.app_base_url}")
    if settings.sandbox_mode:
        from core.auth import DEMO_USERS

        print("Sandbox mode (no SnapTrade credentials): an embedded SnapTrade sandbox and a SQLite file under data/.")
        for username, password, role in DEMO_USERS:
            print(f"  demo {role:<6} login: {username} / {password}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Tradistry Broker Sync command line")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)
    users = sub.add_parser("users", help="manage app users").add_subparsers(dest="users_command", required=True)
    add = users.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", choices=["trader", "staff"], default="trader")
    add.add_argument("--email")
    add.add_argument("--name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(fn=cmd_users_add)
    c = sub.add_parser("connect", help="print a SnapTrade connection-portal URL (last stdout line)")
    c.add_argument("username")
    c.add_argument("--broker")
    c.add_argument("--redirect")
    c.set_defaults(fn=cmd_connect)
    s = sub.add_parser("sync", help="reconcile and sync a user's connections with a progress bar")
    s.add_argument("username")
    s.add_argument("--full", action="store_true", help="re-read the whole history")
    s.add_argument("--connection", metavar="AUTHORIZATION_ID")
    s.set_defaults(fn=cmd_sync)
    e = sub.add_parser("export", help="export a user's transactions")
    e.add_argument("username")
    e.add_argument("--format", choices=["csv", "json"], default="csv")
    e.add_argument("--out")
    e.set_defaults(fn=cmd_export)
    w = sub.add_parser("worker", help="run sync jobs and the scheduler")
    w.add_argument("--poll", type=float, default=None)
    w.set_defaults(fn=cmd_worker)
    sub.add_parser("rotate-key", help="re-encrypt secrets under the first ENCRYPTION_KEYS key").set_defaults(fn=cmd_rotate_key)
    sub.add_parser("banner", help="print the URL and demo logins").set_defaults(fn=cmd_banner)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        logging.basicConfig(level=get_settings().log_level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        install_log_redaction(get_settings())
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        return args.fn(args)
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except SnapTradeError as exc:
        print(f"SnapTrade error: {exc}", file=sys.stderr)
        return 4
    except Exception as exc:  # noqa: BLE001 - one clean line, never a secret-bearing traceback
        print(f"error: {type(exc).__name__}: {redact(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
