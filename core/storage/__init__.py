"""Storage: the tables, the engine and sessions, exact column types, trigger-kept counts, migrations."""
