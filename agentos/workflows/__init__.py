"""Workflows (what to run) and the shared runner (how to run it)."""
