"""Command line: `python -m core migrate | users add | users reset-secret | connect | sync | export | journal rebuild |
trades | positions | worker | rotate-key | banner | support-bundle`.

These commands and their output are a contract other tools rely on (see the README).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys
import time

from sqlmodel import Session, select

from core.logs import configure_logging
from core.messages import MAX_ECHO_CHARS, describe_error, echo_input
from core.settings import ConfigurationError, get_settings
from core.snaptrade.client import SnapTradeError, UserSecretRefused
from core.storage.db import get_engine

log = logging.getLogger("tradistry.cli")


def _user_id(session: Session, username: str) -> int:
    from core.accounts.auth import get_user

    user = get_user(session, username)
    if user is None:
        raise SystemExit(f"error: no user named {echo_input(username)} (create one with `python -m core users add`)")
    return user.id


def cmd_migrate(args) -> int:
    from core.storage import migrate

    migrate.upgrade()
    print(f"database is at the latest schema ({_safe_url()})")
    return 0


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().resolved_database_url).render_as_string(hide_password=True)


def cmd_users_add(args) -> int:
    from core.accounts.auth import create_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        try:
            password = getpass.getpass("Password: ")
        except EOFError:  # no terminal, and stdin was empty or closed
            print("\nerror: no password was typed: run this in a terminal to be asked for one, or give it on the "
                  "first line of stdin with --password-stdin", file=sys.stderr)  # fmt: skip
            return 2
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            user = create_user(session, username=args.username, password=password, role=args.role,
                               email=args.email, name=args.name)  # fmt: skip
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"created {user.role} {user.username}")
    return 0


def cmd_users_reset_secret(args) -> int:
    """Recover a user whose SnapTrade secret is refused: resetUserSecret, or with --register-again a new
    registration. Prints what happened, never the secret."""
    from core.accounts import user_secrets

    with Session(get_engine(), expire_on_commit=False) as session:
        uid = _user_id(session, args.username)
        recover = user_secrets.register_again if args.register_again else user_secrets.reset_user_secret
        try:
            outcome = recover(session, user_id=uid, actor="cli")
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not outcome.ok:
        print(f"error: {outcome.message} (`python -m core users reset-secret {args.username} --register-again`)",
              file=sys.stderr)  # fmt: skip
        return 3
    print(outcome.message)
    return 0


def cmd_connect(args) -> int:
    from core.accounts.connections import create_portal_link

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
    from core.accounts.connections import reconcile_connections
    from core.jobs import queue as jobs
    from core.jobs.worker import Worker
    from core.storage.models import BrokerageConnection

    engine = get_engine()
    with Session(engine, expire_on_commit=False) as session:
        uid = _user_id(session, args.username)
        reconciled = reconcile_connections(session, user_id=uid)
        query = select(BrokerageConnection).where(BrokerageConnection.user_id == uid,
                                                  BrokerageConnection.status != "disconnected")  # fmt: skip
        if args.connection:
            query = query.where(BrokerageConnection.authorization_id == args.connection)
        conns = session.exec(query).all()
        if not conns:
            print(
                "error: no connection to sync" + (f" with id {args.connection}" if args.connection else ""),
                file=sys.stderr,
            )
            return 2
        try:
            runs = jobs.request_manual_sync(
                session,
                user_id=uid,
                connection_id=conns[0].id if args.connection else None,
                full=args.full,
                reconciled_at=reconciled.at,  # the runs reuse this reconcile instead of asking SnapTrade again
            )
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
    from core.jobs import queue as jobs
    from core.storage.models import ACTIVE_SYNC_STATUSES, TransactionSyncLog

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
            print(
                f"\nrun {run_id}: its worker stopped answering; resuming it here as run {successor.id}", file=sys.stderr
            )
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
    from core.storage.models import TransactionSyncLog

    with Session(engine) as session:
        r = session.get(TransactionSyncLog, run_id)
        if r is not None:
            print(_progress_line(r), end="", file=sys.stderr, flush=True)


def cmd_export(args) -> int:
    from core.reads.export import write_export

    with Session(get_engine(), expire_on_commit=False) as session:
        uid = _user_id(session, args.username)
        if not args.out:
            write_export(session, uid, args.format, sys.stdout, bom=args.bom)
            return 0
        with open(args.out, "w", newline="", encoding="utf-8") as out:
            write_export(session, uid, args.format, out, bom=args.bom)
    return 0


def cmd_journal_rebuild(args) -> int:
    from core.journal.upkeep import rebuild_everyone, rebuild_user

    if bool(args.all) == bool(args.username):
        print("error: name one user or give --all", file=sys.stderr)
        return 2
    with Session(get_engine(), expire_on_commit=False) as session:
        if args.all:
            results = rebuild_everyone(session)
        else:
            results = [(args.username, rebuild_user(session, _user_id(session, args.username)))]
    for username, r in results:
        print(f"{username}: journal rebuilt from {r.activities} activities in {r.accounts} account(s), "
              f"{r.pairs} instrument(s), {r.seconds:.2f} s")  # fmt: skip
    return 0


def cmd_journal_report(args) -> int:
    """`trades` and `positions`: the stored journal as issue 22's JSON contract."""
    import json

    from core.reads.journal import positions_report, trades_report

    report = trades_report if args.command == "trades" else positions_report
    with Session(get_engine(), expire_on_commit=False) as session:
        payload = report(session, _user_id(session, args.username))
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_worker(args) -> int:
    from core.jobs.worker import Worker

    worker = Worker(poll_seconds=args.poll)
    signal.signal(signal.SIGTERM, lambda *_: worker._stop.set())
    signal.signal(signal.SIGINT, lambda *_: worker._stop.set())
    print(f"worker {worker.worker_id} running; SIGTERM stops it cleanly", file=sys.stderr)
    worker.run_forever()
    return 0


def cmd_rotate_key(args) -> int:
    from core.accounts.crypto import SecretDecryptionError, rotate_secrets

    with Session(get_engine()) as session:
        try:
            n = rotate_secrets(session)
            session.commit()
        except SecretDecryptionError as exc:
            session.rollback()
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(
        f"re-encrypted {n} SnapTrade user secret(s) under the first ENCRYPTION_KEYS key; older keys can now be removed"
    )
    return 0


def cmd_support_bundle(args) -> int:
    from core.accounts.audit import CLI_ACTOR, Staff
    from core.staff.actions import ActionRefused, perform

    # An operator with shell access: audited as "cli" (the app's pages check the staff role instead).
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            result = perform(session, actor_user_id=None, action="support_bundle", connection_id=args.connection_id,
                             staff=Staff(None, CLI_ACTOR))  # fmt: skip
        except ActionRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if result.data is None:
        print(f"error: {result.message}", file=sys.stderr)
        return 2
    with open(args.out, "wb") as out:
        out.write(result.data)
    print(f"wrote {args.out} ({len(result.data)} bytes): connection {args.connection_id}'s support bundle")
    return 0


def cmd_banner(args) -> int:
    settings = get_settings()
    print(f"Tradistry Broker Sync → {settings.app_base_url}")
    print(f"Database: {_safe_url()}")
    if settings.sandbox_mode:
        from core.accounts.auth import DEMO_USERS

        print("Sandbox mode (no SnapTrade credentials): an embedded SnapTrade sandbox.")
        for username, password, role in DEMO_USERS:
            print(f"  demo {role:<6} login: {username} / {password}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse quotes a refused argument in full; here a long one is cut like every other echo."""

    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)  # subcommands get their own part
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        for arg in sorted(set(getattr(self, "_given", ())), key=len, reverse=True):
            if len(arg) > MAX_ECHO_CHARS:
                message = message.replace(repr(arg), echo_input(arg)).replace(arg, echo_input(arg))
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core", description="Tradistry Broker Sync command line")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)
    _add_users_commands(sub)
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
    e.add_argument("--bom", action="store_true", help="CSV for Excel: start with a UTF-8 byte-order mark")
    e.set_defaults(fn=cmd_export)
    _add_journal_commands(sub)
    w = sub.add_parser("worker", help="run sync jobs and the scheduler")
    w.add_argument("--poll", type=float, default=None)
    w.set_defaults(fn=cmd_worker)
    sub.add_parser("rotate-key", help="re-encrypt secrets under the first ENCRYPTION_KEYS key").set_defaults(
        fn=cmd_rotate_key
    )
    sub.add_parser("banner", help="print the URL and demo logins").set_defaults(fn=cmd_banner)
    b = sub.add_parser("support-bundle", help="write a connection's support bundle (zip of JSON, no secrets)")
    b.add_argument("connection_id", type=int, metavar="CONNECTION_ID")
    b.add_argument("--out", required=True, metavar="FILE")
    b.set_defaults(fn=cmd_support_bundle)
    return p


def _add_users_commands(sub) -> None:
    users = sub.add_parser("users", help="manage app users").add_subparsers(dest="users_command", required=True)
    add = users.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", choices=["trader", "staff"], default="trader")
    add.add_argument("--email")
    add.add_argument("--name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(fn=cmd_users_add)
    reset = users.add_parser("reset-secret", help="recover a user whose SnapTrade secret is refused (error 1083)")
    reset.add_argument("username")
    reset.add_argument(
        "--register-again",
        action="store_true",
        help="register the user with SnapTrade again (old connections close; the trader reconnects)",
    )
    reset.set_defaults(fn=cmd_users_reset_secret)


def _add_journal_commands(sub) -> None:
    journal = sub.add_parser("journal", help="the trading journal").add_subparsers(
        dest="journal_command", required=True
    )
    rebuild = journal.add_parser("rebuild", help="rebuild a user's journal (or everyone's) from the stored activities")
    rebuild.add_argument("username", nargs="?")
    rebuild.add_argument("--all", action="store_true", help="every user")
    rebuild.set_defaults(fn=cmd_journal_rebuild)
    for name, what in (("trades", "round trips, summary per currency and daily P&L"),
                       ("positions", "history's positions beside the broker's")):  # fmt: skip
        report = sub.add_parser(name, help=f"a user's {what} as JSON")
        report.add_argument("username")
        report.add_argument("--format", choices=["json"], default="json")
        report.add_argument("--out")
        report.set_defaults(fn=cmd_journal_report)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(get_settings())  # LOG_FORMAT / LOG_LEVEL; secrets scrubbed
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        return args.fn(args)
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except SnapTradeError as exc:
        print(f"SnapTrade error: {describe_error(exc)}", file=sys.stderr)
        if isinstance(exc, UserSecretRefused) and getattr(args, "username", None):
            print(f"recover with: python -m core users reset-secret {args.username}", file=sys.stderr)
        return 4
    except Exception as exc:  # noqa: BLE001 - one clean line, never a secret-bearing traceback
        log.debug("command failed: %s: %s", type(exc).__name__, exc)  # in full (redacted) with LOG_LEVEL=DEBUG
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
