"""Benchmarks: ingest throughput, request budget, memory, dashboard queries, the browser and the sandbox.
`python -m bench` (or `make bench`) runs them and writes BENCHMARKS.md; docs/PERFORMANCE.md explains it.
"""
