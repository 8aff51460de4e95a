"""The tables, one module per part of the product: what the import writes (`imports`), the trading journal
derived from it (`journal`) and the staff console's records (`staff`); `common` holds their shared values.
Importing this package registers every table on SQLModel.metadata; callers import the names from here."""

from core.storage.models.common import (
    ACTION_OUTCOMES,
    ACTIVE_SYNC_STATUSES,
    ATTEMPT_OUTCOMES,
    CONNECTION_STATUSES,
    FINAL_SYNC_STATUSES,
    ISSUE_KINDS,
    JOURNAL_DIRECTIONS,
    JOURNAL_READ_TYPES,
    JOURNAL_READ_WHERE,
    JOURNAL_STATUSES,
    NAMELESS_WHERE,
    SNAPTRADE_USER_STATUSES,
    STAFF_ACTIONS,
    SYNC_STATUSES,
    SYNC_TRIGGERS,
    USER_ROLES,
    WEBHOOK_STATUSES,
    utcnow,
)
from core.storage.models.imports import (
    AppUser,
    BrokerageAccount,
    BrokerageConnection,
    BrokerageTransaction,
    ManualSyncRequest,
    SnapTradeUser,
    SyncIssue,
    TransactionSyncLog,
    UserTransactionCount,
    WebhookEvent,
)
from core.storage.models.journal import (
    BrokeragePosition,
    JournalDaily,
    JournalDirtyPair,
    JournalOpenLot,
    JournalPairState,
    JournalPosition,
    JournalReconciliation,
    JournalRoundTrip,
    JournalUnplaceable,
)
from core.storage.models.staff import ConnectionStateChange, PortalAttempt, StaffAction, SyncRunRequest

__all__ = [
    "ACTION_OUTCOMES", "ACTIVE_SYNC_STATUSES", "ATTEMPT_OUTCOMES", "CONNECTION_STATUSES", "FINAL_SYNC_STATUSES",
    "ISSUE_KINDS", "JOURNAL_DIRECTIONS", "JOURNAL_READ_TYPES", "JOURNAL_READ_WHERE", "JOURNAL_STATUSES", "NAMELESS_WHERE", "SNAPTRADE_USER_STATUSES", "STAFF_ACTIONS",
    "SYNC_STATUSES", "SYNC_TRIGGERS", "USER_ROLES", "WEBHOOK_STATUSES", "utcnow",
    "AppUser", "BrokerageAccount", "BrokerageConnection", "BrokerageTransaction", "ManualSyncRequest",
    "SnapTradeUser", "SyncIssue", "TransactionSyncLog", "UserTransactionCount", "WebhookEvent",
    "BrokeragePosition", "JournalDaily", "JournalDirtyPair", "JournalOpenLot", "JournalPairState", "JournalPosition", "JournalReconciliation",
    "JournalRoundTrip", "JournalUnplaceable",
    "ConnectionStateChange", "PortalAttempt", "StaffAction", "SyncRunRequest",
]  # fmt: skip
