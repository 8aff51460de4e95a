"""SnapTrade's webhook event types, by what they mean for us (REFERENCE §11): one list that the webhook
receiver and the matching of early events both read."""

# Events that mean "new data may be waiting at SnapTrade for this connection".
SYNC_EVENTS = frozenset({
    "ACCOUNT_TRANSACTIONS_INITIAL_UPDATE", "ACCOUNT_TRANSACTIONS_UPDATED", "NEW_ACCOUNT_AVAILABLE",
    "CONNECTION_ADDED", "CONNECTION_FIXED",
})  # fmt: skip
# Sync events about the whole connection rather than one account.
CONNECTION_LEVEL_EVENTS = frozenset({"CONNECTION_ADDED", "CONNECTION_FIXED"})
STATE_EVENTS = frozenset({"CONNECTION_BROKEN", "CONNECTION_DELETED", "ACCOUNT_REMOVED", "USER_DELETED"})
HANDLED_EVENTS = SYNC_EVENTS | STATE_EVENTS
