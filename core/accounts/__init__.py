"""Accounts: dashboard users and sign-in, encrypted SnapTrade secrets, connections and the portal."""
