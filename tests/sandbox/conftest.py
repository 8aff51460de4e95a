"""Fixtures for the sandbox's own tests: a fresh sandbox per test, real SDK clients, and a shape checker
that validates JSON against the SDK's TypedDicts."""

from __future__ import annotations

import datetime as dt
import types
import typing
from dataclasses import dataclass
from decimal import Decimal

import pytest
from snaptrade_client import Configuration, SnapTrade, SnapTradeAuth

from sandbox import Sandbox


def make_client(sb: Sandbox, consumer_key: str | None = None, client_id: str | None = None) -> SnapTrade:
    auth = SnapTradeAuth.commercial_api_key(
        consumer_key=consumer_key or sb.consumer_key, client_id=client_id or sb.client_id
    )
    cfg = Configuration(auth=auth, host=sb.base_url)
    cfg.retries = False  # see REFERENCE §3: otherwise urllib3 silently retries 429/503
    return SnapTrade(cfg, auth=auth)


@dataclass
class User:
    user_id: str
    secret: str

    @property
    def creds(self) -> dict[str, str]:
        return {"user_id": self.user_id, "user_secret": self.secret}


@pytest.fixture
def sb():
    with Sandbox(seed=42, today="2026-06-15") as sandbox:
        yield sandbox


@pytest.fixture
def client(sb: Sandbox) -> SnapTrade:
    return make_client(sb)


@pytest.fixture
def user(sb: Sandbox, client: SnapTrade) -> User:
    body = client.authentication.register_snap_trade_user(user_id="alice").body
    return User(body["userId"], body["userSecret"])


# ---------------------------------------------------------------------------------------------------------------------
# A demo trader: what the generated histories look like to the app and to the trade journal.

BROKERS = ("SANDBOX_US", "SANDBOX_CRYPTO", "SANDBOX_CA", "SANDBOX_DATEONLY")
SEEDS = (42, 7, 20260615)  # the tests' seed and two others


@dataclass
class Account:
    profile: str
    currency: str
    rows: list[dict]
    positions: dict[str, Decimal]  # what /positions/all answers, by instrument as the journal names it
    cash: Decimal  # what /balances answers

    @property
    def timed(self) -> bool:
        return self.profile != "dateonly"


def broker_units(body: dict) -> dict[str, Decimal]:
    out = {}
    for p in body["results"]:
        inst = p["instrument"]
        name = inst["symbol"].replace(" ", "") if inst["kind"] == "option" else inst["symbol"]
        out[name] = Decimal(p["units"])
    return out


def demo_accounts(seed: int, history_size: int | None = None, days: int = 0) -> list[Account]:
    """A trader who connected all four sandbox brokerages (default history: a few hundred rows over 2-5 years)."""
    with Sandbox(seed=seed, today="2026-06-15") as sb:
        client = make_client(sb)
        secret = client.authentication.register_snap_trade_user(user_id="demo").body["userSecret"]
        creds = {"user_id": "demo", "user_secret": secret}
        for broker in BROKERS:
            sb.create_connection("demo", broker, history_size=history_size)
        if days:
            sb.advance_day(days)
            sb.add_backdated(sb.state.user_accounts("demo")[0].id, count=6, days_back=days)
        truth = sb.ground_truth("demo")
        out = []
        for acct in sb.state.user_accounts("demo"):
            info = client.account_information
            positions = info.get_all_account_positions(account_id=acct.id, **creds).body
            [balance] = info.get_user_account_balance(account_id=acct.id, **creds).body
            out.append(
                Account(
                    acct.profile, acct.currency, truth[acct.id], broker_units(positions), Decimal(str(balance["cash"]))
                )  # fmt: skip
            )
        return out


@pytest.fixture(scope="module", params=SEEDS)
def demo(request) -> list[Account]:
    """Every account of a demo trader, for each of a few seeds."""
    return demo_accounts(request.param)


# ---------------------------------------------------------------------------------------------------------------------
# Shape checking against snaptrade_client.type TypedDicts.


def _is_typeddict(t: object) -> bool:
    return isinstance(t, type) and issubclass(t, dict) and hasattr(t, "__required_keys__")


def check_shape(value: object, annotation: object, where: str = "$") -> None:
    """Assert `value` (parsed JSON) fits `annotation`: required keys present, JSON types right, recursively."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is typing.Any:
        return
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in args:
            try:
                check_shape(value, arg, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: {value!r} fits none of {args}: {errors}")
    if annotation is type(None):
        assert value is None, f"{where}: expected null, got {value!r}"
        return
    if origin is typing.Literal:
        assert value in args, f"{where}: {value!r} not in {args}"
        return
    if origin in (list, typing.List):  # noqa: UP006 - the SDK uses typing.List
        assert isinstance(value, list), f"{where}: expected list, got {type(value).__name__}"
        for i, item in enumerate(value):
            check_shape(item, args[0], f"{where}[{i}]")
        return
    if _is_typeddict(annotation):
        assert isinstance(value, dict), f"{where}: expected object, got {value!r}"
        hints = typing.get_type_hints(annotation)
        for key in annotation.__required_keys__:
            assert key in value, f"{where}: missing required key {key!r}"
        for key, item in value.items():
            if key in hints:
                check_shape(item, hints[key], f"{where}.{key}")
        return
    if annotation in (dt.datetime, dt.date):
        assert isinstance(value, str), f"{where}: expected date string, got {value!r}"
        return
    if annotation is float or annotation is int:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (
            f"{where}: expected number, got {value!r}"
        )
        return
    if annotation is dict:
        assert isinstance(value, dict), f"{where}: expected object"
        return
    if isinstance(annotation, type):
        assert isinstance(value, annotation), f"{where}: expected {annotation.__name__}, got {value!r}"
