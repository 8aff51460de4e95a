"""Activities SnapTrade re-keyed: the same activity served under a new id becomes the stored row's new id,
never a duplicate."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlmodel import Session

from core.ingest.binder import T
from core.ingest.page_write import RunInserts, id_key, ids_match, ledger_statement, payload_hash
from core.storage.models import BrokerageAccount, utcnow

_MERGE_CHUNK = 5000  # ids or fingerprints per statement: under SQLite's parameter limit


def merge_rekeyed(
    session: Session, *, account: BrokerageAccount, inserted: RunInserts, seen: set[int], run_id: int | None
) -> int:
    """Rows this run inserted whose content matches an older row whose id vanished from the fetched window
    are the same activity re-keyed by SnapTrade: the old row takes the new id. Both sides are index
    lookups (the inserted ids, then their fingerprints), so a run that inserted nothing reads nothing."""
    if not inserted.ids:
        return 0
    bind, new_ids = session.get_bind(), sorted(inserted.ids)
    new_rows = []
    for i in range(0, len(new_ids), _MERGE_CHUNK):
        new_rows += session.execute(
            sa.select(T.c.id, T.c.snaptrade_activity_id, T.c.fingerprint, T.c.raw, T.c.raw_hash, T.c.option_mini).where(
                T.c.account_id == account.id, ids_match(bind, new_ids[i : i + _MERGE_CHUNK])
            )
        ).all()
    new_rows.sort(key=lambda r: r.id)
    by_fp: dict[str, list] = defaultdict(list)
    for r in new_rows:
        by_fp[r.fingerprint].append(r)
    fingerprints = sorted(by_fp)
    old_rows = []
    for i in range(0, len(fingerprints), _MERGE_CHUNK):
        old_rows += session.execute(
            sa.select(T.c.id, T.c.snaptrade_activity_id, T.c.fingerprint).where(
                T.c.account_id == account.id, T.c.fingerprint.in_(fingerprints[i : i + _MERGE_CHUNK])
            )
        ).all()
    # The older side: every match but the run's own rows (what created_at < t0 selected).
    old_rows = sorted((r for r in old_rows if r.snaptrade_activity_id not in inserted.ids), key=lambda r: r.id)
    merged = 0
    for old in old_rows:
        if id_key(old.snaptrade_activity_id) in seen:
            continue  # the old id is still served: two genuine activities with equal content
        candidates = by_fp.get(old.fingerprint)
        if not candidates:
            continue
        new = candidates.pop(0)
        session.execute(sa.delete(T).where(T.c.id == new.id))
        # The raw record with what is read from it outside the fingerprint (the option multiplier's flag).
        session.execute(sa.update(T).where(T.c.id == old.id).values(
            snaptrade_activity_id=new.snaptrade_activity_id, raw=new.raw, raw_hash=new.raw_hash,
            option_mini=new.option_mini, updated_at=utcnow()))  # fmt: skip
        session.connection().execute(ledger_statement(session.get_bind()), [{
            "user_id": account.user_id, "account_id": account.id, "run_id": run_id, "kind": "merged",
            "reason": f"SnapTrade re-keyed activity {old.snaptrade_activity_id} as {new.snaptrade_activity_id}; "
                      "the stored row took the new id instead of becoming a duplicate",
            "snaptrade_activity_id": new.snaptrade_activity_id, "matched_transaction_id": old.id,
            "raw_payload": {"old_id": old.snaptrade_activity_id, "new_id": new.snaptrade_activity_id},
            "payload_hash": payload_hash([old.snaptrade_activity_id, new.snaptrade_activity_id]), "created_at": utcnow()}])  # fmt: skip
        merged += 1
    return merged
