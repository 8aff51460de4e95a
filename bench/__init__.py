"""Benchmarks for issue #7: ingest throughput, request budget, memory, dashboard queries, the browser
and the sandbox itself. `python -m bench` (or `make bench`) runs them and writes BENCHMARKS.md.
"""
