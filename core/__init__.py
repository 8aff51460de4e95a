"""Tradistry Broker Sync domain: settings, models, SnapTrade client, sync engine, jobs, queries, auth, crypto."""

__version__ = "0.1.0"
