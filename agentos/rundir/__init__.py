"""The run directory: the on-disk protocol between a run and everything that reads it later.

journal.py   the directory itself, journal.jsonl, joblog.tsv, run.json
state.py     state.json and metrics.jsonl, rewritten while the run goes
"""
