"""Benchmarks of agentos against GNU parallel, xargs, raw loky and concurrent.futures."""
