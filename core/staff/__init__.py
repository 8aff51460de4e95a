"""What staff can do about a connection, each action checked and audited (core.staff.actions)."""
