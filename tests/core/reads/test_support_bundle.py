"""The support bundle: what it holds (timeline, runs with their SnapTrade request metadata, issues,
webhook verdicts, accounts' sync status), what it never holds (secrets, raw activities, webhook bodies,
unmasked numbers, names), staff only, and the same zip from `python -m core support-bundle`."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from io import BytesIO

import pytest
from sqlmodel import Session, select

from core.accounts.audit import PermissionDenied
from core.accounts.connections import get_snaptrade_identity, reconcile_connections
from core.jobs import queue as jobs
from core.jobs.worker import Worker
from core.reads.support_bundle import build_support_bundle
from core.staff.actions import perform
from core.storage.models import AppUser, BrokerageAccount, BrokerageConnection, SnapTradeUser, StaffAction
from core.web.webhooks import process_webhook
from tests import factories as f
from tests.conftest import ROOT, TEST_COOKIE_KEYS
from tests.core.test_cli import cli_env
from tests.syncsupport import connect, make_user

PERSONAL = "Wire from JANE Q PUBLIC acct 99887766"


@pytest.fixture
def synced(engine, sandbox):
    """A trader with a synced sandbox connection (one run with its request log), a quarantined record whose
    raw payload holds personal text, and a webhook whose body carries more than ids."""
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s, "bundle-bob")
        staff = f.make_user(s, "sam", role="staff")
        auth_id = connect(s, sandbox, uid)
        reconcile_connections(s, user_id=uid)
        conn = s.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == auth_id)).one()
        run, _ = jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="manual")
        jobs.claim_run(s, run.id, "bundle-test")
    Worker(engine=engine, scheduler=False).execute(run.id)
    with Session(engine, expire_on_commit=False) as s:
        account = s.exec(select(BrokerageAccount).where(BrokerageAccount.connection_id == conn.id)).first()
        account.account_number = "123456789012"  # as if a full number had slipped into storage
        s.add(account)
        s.commit()
        trader = s.get(AppUser, uid)
        f.make_issue(s, trader, account, run_id=run.id, raw_payload={"id": "x1", "description": PERSONAL})
        st_user = s.exec(select(SnapTradeUser.snaptrade_user_id).where(SnapTradeUser.user_id == uid)).one()
        process_webhook(s, {"webhookId": "w-b1", "eventType": "ACCOUNT_HOLDINGS_UPDATED", "userId": st_user,
                            "clientId": "CID", "eventTimestamp": datetime.now(UTC).isoformat(),
                            "brokerageAuthorizationId": auth_id, "details": {"note": PERSONAL}})  # fmt: skip
        identity = get_snaptrade_identity(s, uid)
    return {"uid": uid, "staff": staff, "conn": conn, "run": run, "secret": identity.user_secret}


def unzip(data: bytes) -> dict[str, str]:
    archive = zipfile.ZipFile(BytesIO(data))
    return {name.split("/", 1)[1]: archive.read(name).decode() for name in archive.namelist()}


def test_the_bundle_holds_what_support_needs(engine, synced):
    with Session(engine) as s:
        files = unzip(build_support_bundle(s, synced["conn"].id, generated_by="sam"))
    assert set(files) == {"README.txt", "manifest.json", "connection.json", "accounts.json", "timeline.json",
                          "runs.json", "requests.json", "issues.json", "webhooks.json", "attempts.json",
                          "state_changes.json", "staff_actions.json"}  # fmt: skip
    connection = json.loads(files["connection.json"])
    assert connection["authorization_id"] == synced["conn"].authorization_id and connection["snaptrade_user_id"]
    [run] = json.loads(files["runs.json"])
    assert (run["id"], run["status"], run["fetched"] > 0) == (synced["run"].id, "completed", True)
    requests = json.loads(files["requests.json"])[str(synced["run"].id)]
    assert len(requests) == run["api_requests"]
    assert {r["path"] for r in requests} >= {"/authorizations", "/accounts/all", "/accounts/{accountId}/activities"}
    assert all(r["status"] == 200 and r["request_id"] and r["duration_ms"] >= 0 for r in requests)
    accounts = json.loads(files["accounts.json"])
    assert accounts and all("snaptrade_initial_sync_completed" in a and a["snaptrade_account_id"] for a in accounts)
    [issue] = json.loads(files["issues.json"])
    assert issue["reason"] and "raw_payload" not in issue
    [event] = json.loads(files["webhooks.json"])
    assert event["status"] == "ignored" and set(event["payload"]) <= {"webhookId", "eventType", "eventTimestamp",
                                                                        "brokerageAuthorizationId"}  # fmt: skip
    kinds = {e["kind"] for e in json.loads(files["timeline.json"])}
    assert {"run", "issue", "webhook", "state"} <= kinds


def test_the_bundle_holds_no_secret_and_no_personal_data(engine, synced, sandbox):
    with Session(engine) as s:
        text = "\n".join(unzip(build_support_bundle(s, synced["conn"].id, generated_by="sam")).values())
        encrypted = s.exec(select(SnapTradeUser.user_secret_encrypted)).one()
    artifact = ROOT / "test-artifacts" / "logs" / f"support-bundle-{engine.dialect.name}.log"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_text(text)  # the suite's secret scan (tests/conftest.py) reads it too
    for secret in (synced["secret"], sandbox.consumer_key, encrypted, *TEST_COOKIE_KEYS):
        assert secret not in text
    assert PERSONAL not in text and "123456789012" not in text and "••••9012" in text
    assert "bundle-bob" not in text  # the trader's name: support gets our ids and SnapTrade's


def test_only_staff_get_a_bundle_and_each_one_is_audited(engine, synced):
    with Session(engine) as s:
        with pytest.raises(PermissionDenied):
            perform(s, actor_user_id=synced["uid"], action="support_bundle", connection_id=synced["conn"].id)
        assert s.exec(select(StaffAction)).all() == []
        result = perform(s, actor_user_id=synced["staff"].id, action="support_bundle", connection_id=synced["conn"].id)
        [entry] = s.exec(select(StaffAction)).all()
    assert result.data and (entry.action, entry.actor_username, entry.outcome) == ("support_bundle", "sam", "done")


def test_the_command_line_writes_the_same_bundle(engine, db_url, sandbox, synced, tmp_path):
    out = tmp_path / "bundle.zip"
    cmd = [sys.executable, "-m", "core", "support-bundle", str(synced["conn"].id), "--out", str(out)]
    r = subprocess.run(
        cmd, cwd=ROOT, env=cli_env(sandbox, db_url, tmp_path), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    files = unzip(out.read_bytes())
    assert json.loads(files["manifest.json"])["generated_by"] == "cli"
    assert synced["secret"] not in r.stdout + r.stderr and synced["secret"] not in "".join(files.values())
    missing = subprocess.run([*cmd[:4], "999999", "--out", str(tmp_path / "x.zip")], cwd=ROOT, capture_output=True,
                             env=cli_env(sandbox, db_url, tmp_path), text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and "does not exist" in missing.stderr
