"""Ingest: SnapTrade activities normalized and written exactly, one sync run at a time."""
