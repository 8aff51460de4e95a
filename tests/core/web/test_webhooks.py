"""SnapTrade webhooks without HTTP: signature verification (REFERENCE §11 vector), validation, and
each event's effect on the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.pending_webhooks import PENDING_NOTE
from core.storage.models import (
    BrokerageAccount,
    BrokerageConnection,
    BrokerageTransaction,
    SnapTradeUser,
    TransactionSyncLog,
    WebhookEvent,
)
from core.web import webhooks
from core.web.webhooks import WebhookRejected, process_webhook, receive_delivery
from tests.factories import make_account, make_connection, make_transaction, make_user

KEY = "test-consumer-key"
VECTOR = {
    "webhookId": "w1",
    "clientId": "CID",
    "eventTimestamp": "2024-05-31T11:16:54.658533+00:00",
    "userId": "u1",
    "eventType": "ACCOUNT_TRANSACTIONS_UPDATED",
    "accountId": "a1",
    "brokerageAuthorizationId": "b1",
    "webhookSecret": "x",
}
VECTOR_SIGNATURE = "huzvLtFfv6Y51RfJ8GwGPCZ51wPuRqnpknv37TuukHE="


def event(event_type: str, user: str = "st-user-1", **fields) -> dict:
    return {
        "webhookId": str(uuid.uuid4()),
        "clientId": "CID",
        "eventTimestamp": datetime.now(UTC).isoformat(),
        "userId": user,
        "eventType": event_type,
        "webhookSecret": "legacy-shared",
        **fields,
    }


@pytest.fixture
def trader(session: Session):
    """An app user registered at SnapTrade as st-user-1 with one connection and two accounts."""
    user = make_user(session)
    session.add(SnapTradeUser(user_id=user.id, snaptrade_user_id="st-user-1", user_secret_encrypted="x"))
    session.commit()
    conn = make_connection(session, user, authorization_id="auth-1")
    acc1 = make_account(session, conn, snaptrade_account_id="acc-1")
    acc2 = make_account(session, conn, snaptrade_account_id="acc-2")
    return user, conn, acc1, acc2


def runs(session: Session) -> list[TransactionSyncLog]:
    return list(session.exec(select(TransactionSyncLog).order_by(TransactionSyncLog.id)))


def stored(session: Session, webhook_id: str) -> WebhookEvent:
    session.expire_all()
    return session.exec(select(WebhookEvent).where(WebhookEvent.webhook_id == webhook_id)).one()


def fresh(session: Session, obj):
    return session.get(type(obj), obj.id, populate_existing=True)


# --------------------------------------------------------------------------- verification


def test_signature_matches_the_reference_vector():
    assert webhooks.webhook_signature(KEY, VECTOR) == VECTOR_SIGNATURE
    assert webhooks.signature_matches(KEY, VECTOR, VECTOR_SIGNATURE)


def test_signature_is_over_the_parsed_payload_so_key_order_and_spacing_do_not_matter():
    body = json.dumps(dict(reversed(list(VECTOR.items()))), indent=2).encode()
    assert body != json.dumps(VECTOR).encode()  # other bytes, same payload
    payload = webhooks.parse_delivery(body)
    assert payload == VECTOR and list(payload) != list(VECTOR)
    assert webhooks.signature_matches(KEY, payload, VECTOR_SIGNATURE)
    assert webhooks.authenticate(payload, VECTOR_SIGNATURE, client_id="CID", consumer_key=KEY) is None


@pytest.mark.parametrize("signature", [None, "", "huzvLtFfv6Y51RfJ8GwGPCZ51wPuRqnpknv37TuukHF=", "not base64 at all"])
def test_missing_or_wrong_signature_is_401(signature):
    with pytest.raises(WebhookRejected) as err:
        webhooks.authenticate(dict(VECTOR), signature, client_id="CID", consumer_key=KEY)
    assert err.value.status == 401


def test_signature_with_another_key_or_an_altered_field_is_401():
    with pytest.raises(WebhookRejected):
        webhooks.authenticate(
            dict(VECTOR), webhooks.webhook_signature("other-key", VECTOR), client_id="CID", consumer_key=KEY
        )
    with pytest.raises(WebhookRejected):
        webhooks.authenticate({**VECTOR, "accountId": "a2"}, VECTOR_SIGNATURE, client_id="CID", consumer_key=KEY)


def test_a_validly_signed_event_for_another_client_id_is_401():
    foreign = {**VECTOR, "clientId": "OTHER"}
    with pytest.raises(WebhookRejected) as err:
        webhooks.authenticate(foreign, webhooks.webhook_signature(KEY, foreign), client_id="CID", consumer_key=KEY)
    assert (err.value.status, err.value.reason) == (401, "clientId does not match")


def test_legacy_webhook_secret_is_accepted_only_when_configured_and_equal():
    unsigned = dict(VECTOR)  # webhookSecret "x"
    webhooks.authenticate(unsigned, None, client_id="CID", consumer_key=KEY, legacy_secret="x")
    for legacy in ("", "y"):
        with pytest.raises(WebhookRejected):
            webhooks.authenticate(unsigned, None, client_id="CID", consumer_key=KEY, legacy_secret=legacy)


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"', b'{"a": NaN}', b"\xff\xfe\x00"])
def test_malformed_or_non_object_bodies_are_400(body):
    with pytest.raises(WebhookRejected) as err:
        webhooks.parse_delivery(body)
    assert err.value.status == 400


def _nested(depth: int) -> dict:
    value: object = "leaf"
    for i in range(depth - 1):
        value = [value] if i % 2 else {"k": value}
    return {"details": value} if depth else {}


@pytest.mark.parametrize("body", [b"[" * 60000, b"[" * 2000 + b"]" * 2000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
                                  json.dumps(_nested(webhooks.MAX_NESTING + 1)).encode()])  # fmt: skip
def test_deeply_nested_bodies_are_400_before_any_deep_parse(body):
    with pytest.raises(WebhookRejected) as err:  # was RecursionError: the route answered 500
        webhooks.parse_delivery(body)
    assert err.value.status == 400 and "nested deeper" in err.value.reason


def test_nesting_up_to_the_limit_and_brackets_inside_strings_are_accepted():
    deep = _nested(webhooks.MAX_NESTING)
    assert webhooks.parse_delivery(json.dumps(deep).encode()) == deep
    quoted = {"note": "[" * 500 + '\\"{' * 100 + "\\", "after": [[["x"]]]}
    assert webhooks.parse_delivery(json.dumps(quoted).encode()) == quoted
    # A quote escaped inside a string does not end it; an escaped backslash does not escape the quote after it.
    assert not webhooks.nesting_exceeds('{"a": "\\"[[[[", "b": "\\\\"}', limit=1)
    assert webhooks.nesting_exceeds('{"a": "\\\\", "b": [[[1]]]}', limit=3)


@pytest.mark.parametrize("missing", ["webhookId", "eventType", "eventTimestamp"])
def test_events_without_their_key_fields_are_400(missing):
    payload = {k: v for k, v in event("USER_REGISTERED").items() if k != missing}
    with pytest.raises(WebhookRejected) as err:
        webhooks.validate_event(payload, max_age_seconds=3600)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(timedelta(hours=-5, minutes=-59), True), (timedelta(hours=-6, minutes=-1), False),
     (timedelta(minutes=4), True), (timedelta(minutes=6), False)],
)  # fmt: skip
def test_event_time_window_allows_retries_for_six_hours_and_little_clock_skew(offset, accepted):
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    payload = {**event("USER_REGISTERED"), "eventTimestamp": (now + offset).isoformat()}
    if accepted:
        assert webhooks.validate_event(payload, max_age_seconds=6 * 3600, now=now) == now + offset
    else:
        with pytest.raises(WebhookRejected, match="stale event"):
            webhooks.validate_event(payload, max_age_seconds=6 * 3600, now=now)


def test_naive_and_z_timestamps_are_read_as_utc():
    assert webhooks.parse_event_time("2024-05-31T11:16:54") == datetime(2024, 5, 31, 11, 16, 54, tzinfo=UTC)
    assert webhooks.parse_event_time("2024-05-31T11:16:54Z") == datetime(2024, 5, 31, 11, 16, 54, tzinfo=UTC)
    assert webhooks.parse_event_time("yesterday") is None


def test_receive_delivery_rejects_before_writing_anything(session):
    payload = event("ACCOUNT_TRANSACTIONS_UPDATED", brokerageAuthorizationId="auth-1")
    body = json.dumps(payload).encode()
    kw = {"client_id": "CID", "consumer_key": KEY, "max_age_seconds": 3600}
    with pytest.raises(WebhookRejected):
        receive_delivery(session, body, "forged", **kw)
    stale = {**payload, "eventTimestamp": "2020-01-01T00:00:00+00:00"}
    with pytest.raises(WebhookRejected):
        receive_delivery(session, json.dumps(stale).encode(), webhooks.webhook_signature(KEY, stale), **kw)
    assert session.exec(select(sa.func.count()).select_from(WebhookEvent)).one() == 0
    result = receive_delivery(session, body, webhooks.webhook_signature(KEY, payload), **kw)
    assert result.outcome == "accepted"


# --------------------------------------------------------------------------- storage and effects


def test_transactions_updated_queues_one_webhook_sync_and_hints_only_that_account(session, trader):
    user, conn, acc1, acc2 = trader
    payload = event("ACCOUNT_TRANSACTIONS_UPDATED", accountId="acc-1", brokerageAuthorizationId="auth-1")
    result = process_webhook(session, payload)
    assert (result.outcome, result.event_status, result.run_created) == ("accepted", "processed", True)
    [run] = runs(session)
    assert (run.trigger, run.status, run.connection_id, run.user_id) == ("webhook", "queued", conn.id, user.id)
    assert fresh(session, acc1).has_pending_hint and not fresh(session, acc2).has_pending_hint
    row = stored(session, payload["webhookId"])
    assert (row.status, row.user_id, row.account_id, row.authorization_id) == ("processed", user.id, "acc-1", "auth-1")
    assert row.event_timestamp is not None and row.processed_at is not None
    assert "webhookSecret" not in row.payload and row.payload["accountId"] == "acc-1"


def test_a_repeated_webhook_id_is_stored_once_and_does_nothing_more(session, trader):
    payload = event("ACCOUNT_TRANSACTIONS_INITIAL_UPDATE", accountId="acc-1", brokerageAuthorizationId="auth-1")
    assert process_webhook(session, payload).outcome == "accepted"
    [run] = runs(session)
    run.status = "completed"  # the sync ran; a replay must not queue another
    session.add(run)
    session.commit()
    assert process_webhook(session, dict(payload)).outcome == "duplicate"
    assert len(runs(session)) == 1
    assert session.exec(select(sa.func.count()).select_from(WebhookEvent)).one() == 1


def test_events_for_one_connection_coalesce_into_one_queued_sync(session, trader):
    _, conn, _, _ = trader
    results = [
        process_webhook(session, event("ACCOUNT_TRANSACTIONS_UPDATED", accountId="acc-1", brokerageAuthorizationId="auth-1")),
        process_webhook(session, event("ACCOUNT_TRANSACTIONS_UPDATED", accountId="acc-2", brokerageAuthorizationId="auth-1")),
        process_webhook(session, event("NEW_ACCOUNT_AVAILABLE", accountId="acc-new", brokerageAuthorizationId="auth-1")),
    ]  # fmt: skip
    assert [r.run_created for r in results] == [True, False, False]
    assert len({r.run_id for r in results}) == 1 and len(runs(session)) == 1
    assert results[2].note == "account not known yet; the sync's reconcile will add it"


@pytest.mark.parametrize("event_type", ["CONNECTION_ADDED", "CONNECTION_FIXED"])
def test_connection_level_events_queue_a_sync_and_hint_every_active_account(session, trader, event_type):
    user, conn, acc1, acc2 = trader
    acc2.is_active = False
    session.add(acc2)
    session.commit()
    result = process_webhook(session, event(event_type, brokerageAuthorizationId="auth-1", brokerageId="ALPACA"))
    assert result.event_status == "processed" and result.run_created
    assert fresh(session, acc1).has_pending_hint and not fresh(session, acc2).has_pending_hint


def test_connection_fixed_makes_a_broken_connection_active_again(session, trader):
    _, conn, _, _ = trader
    earlier = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    process_webhook(
        session, {**event("CONNECTION_BROKEN", brokerageAuthorizationId="auth-1"), "eventTimestamp": earlier}
    )
    assert fresh(session, conn).status == "needs_reconnect"
    process_webhook(session, event("CONNECTION_FIXED", brokerageAuthorizationId="auth-1"))
    conn = fresh(session, conn)
    assert (conn.status, conn.disabled_at, conn.status_reason) == ("active", None, None)
    assert runs(session)[0].trigger == "webhook"


def test_connection_broken_needs_reconnect_from_the_event_time_with_the_reason(session, trader):
    _, conn, _, _ = trader
    payload = {**event("CONNECTION_BROKEN", brokerageAuthorizationId="auth-1"),
               "eventTimestamp": "2026-03-01T09:30:00+00:00", "details": {"reason": "Password changed at the broker"}}  # fmt: skip
    result = process_webhook(session, payload, now=datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    conn = fresh(session, conn)
    assert result.event_status == "processed" and result.run_id is None and runs(session) == []
    assert conn.status == "needs_reconnect"
    assert conn.disabled_at == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert conn.status_reason == "Password changed at the broker"


def test_connection_broken_without_details_gets_the_default_reason(session, trader):
    _, conn, _, _ = trader
    process_webhook(session, event("CONNECTION_BROKEN", brokerageAuthorizationId="auth-1"))
    assert fresh(session, conn).status_reason == "SnapTrade reported the connection as broken"


def test_a_late_retried_broken_event_does_not_undo_a_newer_fixed_one(session, trader):
    _, conn, _, _ = trader
    now = datetime.now(UTC)
    fixed = {**event("CONNECTION_FIXED", brokerageAuthorizationId="auth-1"), "eventTimestamp": now.isoformat()}
    broken = {**event("CONNECTION_BROKEN", brokerageAuthorizationId="auth-1"),
              "eventTimestamp": (now - timedelta(minutes=40)).isoformat()}  # fmt: skip
    process_webhook(session, fixed)
    result = process_webhook(session, broken)
    assert result.event_status == "ignored"
    assert fresh(session, conn).status == "active"


def test_connection_deleted_disconnects_and_keeps_history(session, trader):
    _, conn, acc1, _ = trader
    make_transaction(session, acc1)
    process_webhook(session, event("CONNECTION_DELETED", brokerageAuthorizationId="auth-1", brokerageId="ALPACA"))
    conn, acc1 = fresh(session, conn), fresh(session, acc1)
    assert conn.status == "disconnected" and not conn.auto_sync_enabled
    assert not acc1.is_active and acc1.removed_at is not None
    assert session.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one() == 1


def test_account_removed_deactivates_the_account_and_keeps_history(session, trader):
    _, conn, acc1, acc2 = trader
    make_transaction(session, acc1)
    payload = {**event("ACCOUNT_REMOVED", accountId="acc-1", brokerageAuthorizationId="auth-1"),
               "eventTimestamp": "2026-03-01T09:30:00+00:00"}  # fmt: skip
    result = process_webhook(session, payload, now=datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    acc1 = fresh(session, acc1)
    assert result.event_status == "processed"
    assert (acc1.is_active, acc1.removed_at) == (False, datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    assert fresh(session, acc2).is_active and fresh(session, conn).status == "active"
    assert session.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one() == 1


def test_user_deleted_disconnects_every_connection_of_the_user(session, trader):
    user, conn, _, _ = trader
    other = make_connection(session, user, authorization_id="auth-2")
    result = process_webhook(session, event("USER_DELETED"))
    assert result.event_status == "processed"
    assert {fresh(session, c).status for c in (conn, other)} == {"disconnected"}
    assert runs(session) == []


@pytest.mark.parametrize(
    ("event_type", "fields", "note"),
    [
        ("USER_REGISTERED", {}, None),
        ("CONNECTION_ATTEMPTED", {"brokerageId": "ALPACA", "connectionAttemptedResult": "INVALID_MFA_CODE"},
         "connectionAttemptedResult=INVALID_MFA_CODE"),
        ("ACCOUNT_HOLDINGS_UPDATED", {"accountId": "acc-1", "brokerageAuthorizationId": "auth-1",
                                      "details": {"total_value": 1234.5, "positions": 3}}, None),
        ("SOMETHING_NEW_IN_2027", {"brokerageAuthorizationId": "auth-1"}, None),
    ],
)  # fmt: skip
def test_informational_and_unknown_events_are_stored_as_ignored_without_a_sync(
    session, trader, event_type, fields, note
):
    user, _, acc1, _ = trader
    payload = event(event_type, **fields)
    result = process_webhook(session, payload)
    row = stored(session, payload["webhookId"])
    assert (result.event_status, row.status, row.note, row.user_id) == ("ignored", "ignored", note, user.id)
    assert runs(session) == [] and not fresh(session, acc1).has_pending_hint
    if event_type == "CONNECTION_ATTEMPTED":
        assert row.payload["connectionAttemptedResult"] == "INVALID_MFA_CODE"


def test_connection_added_for_an_unknown_authorization_is_kept_pending_and_queues_nothing(session, trader):
    """SnapTrade sends it before the portal's callback records the connection (core.accounts.pending_webhooks)."""
    user, _, _, _ = trader
    payload = event("CONNECTION_ADDED", brokerageAuthorizationId="auth-unknown", brokerageId="ALPACA")
    result = process_webhook(session, payload)
    row = stored(session, payload["webhookId"])
    assert (result.event_status, row.status, row.note, row.user_id, row.processed_at) == (
        "pending",
        "pending",
        PENDING_NOTE,
        user.id,
        None,
    )
    assert result.run_id is None and runs(session) == []
    assert session.exec(select(sa.func.count()).select_from(BrokerageConnection)).one() == 1


def test_events_for_an_unknown_user_are_flagged_for_staff(session, trader):
    payload = event(
        "ACCOUNT_TRANSACTIONS_UPDATED", user="st-stranger", accountId="acc-1", brokerageAuthorizationId="auth-1"
    )
    result = process_webhook(session, payload)
    row = stored(session, payload["webhookId"])
    assert (row.status, row.user_id) == ("flagged", None) and "unknown SnapTrade user" in row.note
    assert result.run_id is None and runs(session) == []


def test_an_event_whose_connection_belongs_to_another_user_is_flagged(session, trader):
    other = make_user(session)
    session.add(SnapTradeUser(user_id=other.id, snaptrade_user_id="st-user-2", user_secret_encrypted="x"))
    session.commit()
    result = process_webhook(session, event("CONNECTION_BROKEN", user="st-user-2", brokerageAuthorizationId="auth-1"))
    assert result.event_status == "flagged"
    assert fresh(session, trader[1]).status == "active"


def test_a_delivery_whose_processing_died_is_redone_by_the_retry(session, trader):
    _, conn, acc1, _ = trader
    payload = event("ACCOUNT_TRANSACTIONS_UPDATED", accountId="acc-1", brokerageAuthorizationId="auth-1")
    row = webhooks._event_row(payload, trader[0].id, datetime.now(UTC) - timedelta(minutes=30))
    session.add(WebhookEvent(**row))  # left 'received' by a process that stopped half-way
    session.commit()
    result = process_webhook(session, payload)
    assert (result.outcome, result.event_status, result.run_created) == ("accepted", "processed", True)
    assert stored(session, payload["webhookId"]).status == "processed"
    assert fresh(session, acc1).has_pending_hint


def test_an_event_being_processed_right_now_is_not_redone_by_a_concurrent_duplicate(session, trader):
    payload = event("ACCOUNT_TRANSACTIONS_UPDATED", accountId="acc-1", brokerageAuthorizationId="auth-1")
    session.add(WebhookEvent(**webhooks._event_row(payload, trader[0].id, datetime.now(UTC))))
    session.commit()
    assert process_webhook(session, payload).outcome == "duplicate"
    assert runs(session) == []


def test_log_line_names_the_event_and_never_the_secret(caplog):
    caplog.set_level("INFO", logger="tradistry.webhooks")
    webhooks.log_delivery("ACCOUNT_TRANSACTIONS_UPDATED", "w1\nINJECTED consumerKey=abc123", "accepted")
    [record] = caplog.records
    message = record.getMessage()
    assert "eventType=ACCOUNT_TRANSACTIONS_UPDATED" in message and "outcome=accepted" in message
    assert "\n" not in message and "abc123" not in message


def test_accounts_keyed_by_account_only_find_their_connection(session, trader):
    """Some events carry accountId without brokerageAuthorizationId: the account leads to the connection."""
    _, conn, acc1, _ = trader
    result = process_webhook(session, event("ACCOUNT_TRANSACTIONS_UPDATED", accountId="acc-1"))
    assert result.event_status == "processed" and runs(session)[0].connection_id == conn.id
    assert session.get(BrokerageAccount, acc1.id, populate_existing=True).has_pending_hint
