"""The rate governor: run at the providers' limits, not into them.

    signals.py    what a provider's answer says: rate-limit headers, the four kinds of "no"
    pacing.py     one limit (requests or tokens per minute) as a pacer that reserves start times
    adaptive.py   a rate learned from refusals alone, when nothing states the limit
    governor.py   keys, their groups and budgets; per-call grants and per-item leases
    parked.py     keys out of quota, remembered across runs (by fingerprint, never the key)

The governor lives where the key coordinator always lived (in-process for sequential runs, in the
key-server process for loky, in the key actor for Dask), so every backend asks the same object.
Nothing here imports the CLI: workers import it.
"""
