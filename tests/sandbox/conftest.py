"""Fixtures for the sandbox's own tests: a fresh sandbox per test, real SDK clients, and a shape checker
that validates JSON against the SDK's TypedDicts."""

from __future__ import annotations

import datetime as dt
import types
import typing
from dataclasses import dataclass

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
