"""The sandbox's world: users, connections, accounts and their history overlays, optionally saved to SQLite.

Operations here change state and return the webhook events they caused; they never touch the network.
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sandbox import trading_days
from sandbox.catalog import BROKERAGES, AccountProfile
from sandbox.hashing import h64, mix64, uuid_from
from sandbox.history import AccountView, Extra, Malformed, Profile, Segment
from sandbox.scenarios import KIND_TYPE, LATE_KINDS, market, type_code

Event = tuple[str, str, dict[str, Any]]  # (eventType, userId, extra payload fields)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def utc_today() -> int:
    return datetime.now(UTC).date().toordinal()


@dataclass
class User:
    user_id: str
    secret: str
    created: str


@dataclass
class Connection:
    id: str
    user_id: str
    broker: str
    name: str
    type: str
    created: str
    updated: str
    account_ids: list[str] = field(default_factory=list)
    disabled: bool = False
    disabled_date: str | None = None
    disabled_reason: str | None = None


@dataclass
class Account:
    id: str
    user_id: str
    connection_id: str
    broker: str
    profile: str
    name: str
    currency: str
    raw_type: str
    cash_or_margin: str
    number: str
    created: str
    key: int
    segments: list[list[int]]  # [start, count, first_day, days]
    base_days: int
    last_sync_day: int
    extras: list[list[Any]] = field(default_factory=list)  # [serial, day, secs, kind]
    rekeys: dict[str, str] = field(default_factory=dict)  # str(token) -> id
    rekey_generation: int = 0
    next_serial: int = 0
    pending_days: list[int] = field(default_factory=list)  # days missed while the connection was disabled
    view_cache: AccountView | None = field(default=None, repr=False, compare=False)
    version: int = field(default=0, repr=False, compare=False)  # bumped on every change; keys the page cache

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("view_cache")
        d.pop("version")
        return d

    @property
    def count(self) -> int:
        start, count, _, _ = self.segments[-1]
        return start + count


class State:
    """All mutable sandbox state behind one lock; readers take cheap immutable `AccountView` snapshots."""

    def __init__(self, seed: int = 0, state_file: str | None = None) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.state_file = state_file
        self.users: dict[str, User] = {}
        self.connections: dict[str, Connection] = {}
        self.accounts: dict[str, Account] = {}
        self.counters: dict[str, int] = {}
        self.today = utc_today()
        self.history_size: int | None = None
        self.malformed = Malformed()
        self.keys: dict[str, str] = {}
        if state_file:
            self._load()

    # -- persistence ----------------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        assert self.state_file
        db = sqlite3.connect(self.state_file)
        db.execute("CREATE TABLE IF NOT EXISTS sandbox_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        return db

    def _load(self) -> None:
        db = self._db()
        try:
            row = db.execute("SELECT value FROM sandbox_state WHERE key = 'state'").fetchone()
        finally:
            db.close()
        if not row:
            return
        s = json.loads(row[0])
        self.seed = s["seed"]
        self.today = s["today"]
        self.history_size = s["history_size"]
        self.counters = s["counters"]
        self.keys = s.get("keys", {})
        self.users = {k: User(**v) for k, v in s["users"].items()}
        self.connections = {k: Connection(**v) for k, v in s["connections"].items()}
        self.accounts = {k: Account(**v) for k, v in s["accounts"].items()}

    def save(self) -> None:
        """Write the whole state (small: histories are derived, not stored) in one transaction."""
        if not self.state_file:
            return
        with self.lock:
            blob = json.dumps(
                {
                    "seed": self.seed,
                    "today": self.today,
                    "history_size": self.history_size,
                    "counters": self.counters,
                    "keys": self.keys,
                    "users": {k: asdict(v) for k, v in self.users.items()},
                    "connections": {k: asdict(v) for k, v in self.connections.items()},
                    "accounts": {k: v.to_json() for k, v in self.accounts.items()},
                }
            )
            db = self._db()
            try:
                with db:
                    db.execute("INSERT OR REPLACE INTO sandbox_state (key, value) VALUES ('state', ?)", (blob,))
            finally:
                db.close()

    # -- ids ------------------------------------------------------------------------------------------------------
    def _next(self, name: str) -> int:
        n = self.counters.get(name, 0) + 1
        self.counters[name] = n
        return n

    def _det_uuid(self, *parts: object) -> str:
        """Ids follow from the seed and the order of operations, so a replayed scenario gets the same ids."""
        return uuid_from(h64(self.seed, *parts))

    # -- views ----------------------------------------------------------------------------------------------------
    def view(self, account: Account) -> AccountView:
        v = account.view_cache
        if v is None or v.malformed != self.malformed:
            broker = BROKERAGES[account.broker]
            extras = sorted(
                (Extra(e[0], e[1], e[2], e[3], type_code(KIND_TYPE[e[3]])) for e in account.extras),
                key=lambda e: (-e.stamp, -e.serial),
            )
            v = AccountView(
                account_id=account.id,
                key=account.key,
                profile=Profile(
                    account.profile,
                    account.currency,
                    broker.display_name,
                    broker.date_only,
                    account.profile == "crypto",
                ),
                segments=tuple(Segment(*s) for s in account.segments),
                extras=tuple(extras),
                rekeys={int(k): v for k, v in account.rekeys.items()},
                malformed=self.malformed,
            )
            account.view_cache = v
        return v

    def _touch(self, account: Account) -> None:
        account.view_cache = None
        account.version += 1

    # -- users ----------------------------------------------------------------------------------------------------
    def register_user(self, user_id: str) -> tuple[User, list[Event]]:
        with self.lock:
            user = User(user_id, str(uuid.uuid4()), utc_now_iso())
            self.users[user_id] = user
            self.save()
            return user, [("USER_REGISTERED", user_id, {})]

    def reset_secret(self, user_id: str) -> User:
        with self.lock:
            user = self.users[user_id]
            user.secret = str(uuid.uuid4())
            self.save()
            return user

    def delete_user(self, user_id: str) -> list[Event]:
        with self.lock:
            for conn in [c for c in self.connections.values() if c.user_id == user_id]:
                self._drop_connection(conn)
            self.users.pop(user_id, None)
            self.save()
            return [("USER_DELETED", user_id, {})]

    def ensure_user(self, user_id: str) -> tuple[User, list[Event]]:
        """Control helper: tests may create connections for users they never registered over HTTP."""
        with self.lock:
            if user_id in self.users:
                return self.users[user_id], []
            return self.register_user(user_id)

    # -- connections ----------------------------------------------------------------------------------------------
    def create_connection(
        self, user_id: str, broker: str = "SANDBOX_US", history_size: int | None = None, conn_type: str = "read"
    ) -> tuple[Connection, list[Event]]:
        if broker not in BROKERAGES:
            raise KeyError(broker)
        with self.lock:
            _, events = self.ensure_user(user_id)
            n = self._next(f"conn/{user_id}")
            cid = self._det_uuid("connection", user_id, n)
            now = utc_now_iso()
            conn = Connection(cid, user_id, broker, f"Connection-{n}", conn_type, now, now)
            b = BROKERAGES[broker]
            events.append(
                ("CONNECTION_ATTEMPTED", user_id, {"brokerageId": b.id, "connectionAttemptedResult": "SUCCESS"})
            )
            events.append(("CONNECTION_ADDED", user_id, {"brokerageId": b.id, "brokerageAuthorizationId": cid}))
            for k, profile in enumerate(b.accounts):
                acct = self._new_account(conn, profile, k, history_size)
                conn.account_ids.append(acct.id)
                events.append(
                    ("NEW_ACCOUNT_AVAILABLE", user_id, {"accountId": acct.id, "brokerageAuthorizationId": cid})
                )
            for aid in conn.account_ids:
                events.append(
                    (
                        "ACCOUNT_TRANSACTIONS_INITIAL_UPDATE",
                        user_id,
                        {"accountId": aid, "brokerageAuthorizationId": cid},
                    )
                )
            self.connections[cid] = conn
            self.save()
            return conn, events

    def _new_account(self, conn: Connection, profile: AccountProfile, k: int, history_size: int | None) -> Account:
        aid = self._det_uuid("account", conn.id, k)
        key = h64(self.seed, aid)
        size = history_size if history_size is not None else self.history_size
        if size is None:
            size = 300 + key % 301  # realistic default: a few hundred rows per account
        days = 730 + (key >> 20) % 1096  # two to five years of history
        acct = Account(
            id=aid,
            user_id=conn.user_id,
            connection_id=conn.id,
            broker=conn.broker,
            profile=profile.key,
            name=profile.name,
            currency=profile.currency,
            raw_type=profile.raw_type,
            cash_or_margin=profile.cash_or_margin,
            number=f"{(key >> 8) % 100_000_000:08d}",
            created=conn.created,
            key=key,
            # the history ends yesterday: SnapTrade's transactions lag a day
            segments=[[0, size, self.today - days, days]],
            base_days=days,
            last_sync_day=self.today - 1,
        )
        self.accounts[aid] = acct
        return acct

    def connection(self, auth_id: str) -> Connection:
        return self.connections[auth_id]

    def disable_connection(self, auth_id: str, reason: str = "Authentication expired") -> list[Event]:
        with self.lock:
            conn = self.connections[auth_id]
            if conn.disabled:
                return []
            conn.disabled = True
            conn.disabled_date = utc_now_iso()
            conn.disabled_reason = reason
            conn.updated = conn.disabled_date
            self.save()
            return [("CONNECTION_BROKEN", conn.user_id, {"brokerageAuthorizationId": auth_id})]

    def fix_connection(self, auth_id: str) -> list[Event]:
        """Re-enable; the days missed while disabled are synced now (late rows appear at once)."""
        with self.lock:
            conn = self.connections[auth_id]
            if not conn.disabled:
                return []
            conn.disabled = False
            conn.disabled_date = None
            conn.disabled_reason = None
            conn.updated = utc_now_iso()
            events: list[Event] = [("CONNECTION_FIXED", conn.user_id, {"brokerageAuthorizationId": auth_id})]
            for aid in conn.account_ids:
                acct = self.accounts[aid]
                added = 0
                for day in acct.pending_days:
                    added += self._append_day(acct, day)
                acct.pending_days = []
                acct.last_sync_day = self.today - 1
                if added:
                    events.append(self._updated(acct))
            self.save()
            return events

    def delete_connection(self, auth_id: str) -> list[Event]:
        with self.lock:
            conn = self.connections[auth_id]
            self._drop_connection(conn)
            self.save()
            b = BROKERAGES[conn.broker]
            return [("CONNECTION_DELETED", conn.user_id, {"brokerageId": b.id, "brokerageAuthorizationId": auth_id})]

    def _drop_connection(self, conn: Connection) -> None:
        for aid in conn.account_ids:
            self.accounts.pop(aid, None)
        self.connections.pop(conn.id, None)

    def remove_account(self, account_id: str) -> list[Event]:
        with self.lock:
            acct = self.accounts.pop(account_id)
            conn = self.connections.get(acct.connection_id)
            if conn and account_id in conn.account_ids:
                conn.account_ids.remove(account_id)
            self.save()
            return [
                (
                    "ACCOUNT_REMOVED",
                    acct.user_id,
                    {"accountId": account_id, "brokerageAuthorizationId": acct.connection_id},
                )
            ]

    # -- history mutations ----------------------------------------------------------------------------------------
    def _daily_count(self, acct: Account, day: int) -> int:
        base_count = acct.segments[0][1]
        rate = base_count / max(acct.base_days, 1)
        u = (mix64(acct.key ^ day) % 1000) / 1000.0
        return max(1, round(rate * (0.5 + u)))

    def _append_day(self, acct: Account, day: int) -> int:
        k = self._daily_count(acct, day)
        acct.segments.append([acct.count, k, day, 1])
        self._touch(acct)
        return k

    def _updated(self, acct: Account) -> Event:
        return (
            "ACCOUNT_TRANSACTIONS_UPDATED",
            acct.user_id,
            {"accountId": acct.id, "brokerageAuthorizationId": acct.connection_id},
        )

    def advance_day(self, days: int = 1) -> list[Event]:
        events: list[Event] = []
        with self.lock:
            for _ in range(days):
                self.today += 1
                day = self.today - 1  # the day that just completed and is now synced
                for acct in self.accounts.values():
                    conn = self.connections[acct.connection_id]
                    if conn.disabled:
                        acct.pending_days.append(day)
                        continue
                    added = self._append_day(acct, day)
                    acct.last_sync_day = day
                    if added:
                        events.append(self._updated(acct))
            self.save()
        return events

    def add_backdated(self, account_id: str, count: int, days_back: int) -> tuple[list[str], list[Event]]:
        with self.lock:
            acct = self.accounts[account_id]
            rng = random.Random(h64(self.seed, account_id, "late", acct.next_serial))
            kinds = LATE_KINDS[acct.profile]
            date_only = BROKERAGES[acct.broker].date_only
            days = self._late_days(acct, days_back)
            serials = []
            for _ in range(count):
                serial = acct.next_serial
                acct.next_serial += 1
                day = rng.choice(days)
                secs = 0 if date_only else rng.randint(48600, 48600 + 23399)
                acct.extras.append([serial, day, secs, rng.choice(kinds)])
                serials.append(serial)
            self._touch(acct)
            view = self.view(acct)
            ids = [view.extra_id(s) for s in serials]
            self.save()
            return ids, [self._updated(acct)] if count else []

    def _late_days(self, acct: Account, days_back: int) -> list[int]:
        """Days a backdated row may fall on: the last `days_back` days, only those the exchange was open (crypto
        trades every day); the last open day if the window holds none."""
        window = range(self.today - max(1, days_back), self.today)
        if acct.profile == "crypto":
            return list(window)
        cal = market(acct.profile)
        return [d for d in window if trading_days.is_open(cal, d)] or [
            trading_days.last_open_on_or_before(cal, self.today - 1)
        ]

    def rekey(self, account_id: str, count: int) -> list[tuple[str, str]]:
        with self.lock:
            acct = self.accounts[account_id]
            view = self.view(acct)
            acct.rekey_generation += 1
            rng = random.Random(h64(self.seed, account_id, "rekey", acct.rekey_generation))
            extra_tokens = [~e.serial for e in view.extras]
            n_total = view.count + len(extra_tokens)
            picked: list[int] = []
            seen: set[int] = set()
            attempts = 0
            while len(picked) < min(count, n_total) and attempts < count * 20 + 100:
                attempts += 1
                r = rng.randrange(n_total)
                t = r if r < view.count else extra_tokens[r - view.count]
                if t in seen or view.is_malformed(t) == 0:  # a row without an id cannot be re-keyed
                    continue
                seen.add(t)
                picked.append(t)
            pairs = []
            for t in picked:
                old = view.row_id(t) if t >= 0 else view.extra_id(~t)
                new = self._det_uuid("rekey", account_id, t, acct.rekey_generation)
                acct.rekeys[str(t)] = new
                pairs.append((old, new))
            self._touch(acct)
            self.save()
            return pairs

    # -- reads ----------------------------------------------------------------------------------------------------
    def user_accounts(self, user_id: str) -> list[Account]:
        with self.lock:
            out = []
            for conn in self.connections.values():
                if conn.user_id == user_id:
                    out.extend(self.accounts[a] for a in conn.account_ids if a in self.accounts)
            return out

    def user_connections(self, user_id: str) -> list[Connection]:
        with self.lock:
            return [c for c in self.connections.values() if c.user_id == user_id]

    def new_keys(self) -> tuple[str, str]:
        return "SANDBOX-" + secrets.token_hex(6).upper(), secrets.token_urlsafe(36)


def day_iso(day: int) -> str:
    return date.fromordinal(day).isoformat()


def monotonic() -> float:
    return time.monotonic()
