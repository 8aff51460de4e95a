"""Reads: what the pages show, as plain data from the stored transactions and runs."""
