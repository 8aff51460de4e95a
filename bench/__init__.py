"""Benchmarks: `python -m bench` (`make bench`) writes BENCHMARKS.md; docs/PERFORMANCE.md explains it."""
