"""Benchmarks: `python -m bench` (see docs/performance.md and bench/harness.py)."""
