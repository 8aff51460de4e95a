"""Jobs: the sync queue (transaction_sync_log) and the worker that claims, runs and schedules it."""
