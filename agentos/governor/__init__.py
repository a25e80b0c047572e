"""The rate governor: run at the providers' limits, not into them.

    pacing.py     one limit (requests or tokens per minute) as a pacer that reserves start times
    adaptive.py   a rate learned from refusals alone, when nothing states the limit
    governor.py   keys, their groups and budgets; per-call grants and per-item leases
    evidence.py   whether a rate refusal shows a limit or the provider's noise
    group.py      a KeyGroup: the keys that share one organisation's limits, and their pacing
    credentials.py  keys and their settings, leases, the redactor
    protocol.py   KeyService, what the parent asks of the governor wherever it is hosted
    service.py    the Manager that serves it to loky workers
    parked.py     keys out of quota, remembered across runs (by fingerprint, never the key)

What a provider's answer says (rate-limit headers, the four kinds of "no") is read on the item's
side, agentos.item.refusals.

One governor serves the whole run, hosted where every process that needs a key can reach it
(in-process for sequential runs, in the key-server process for loky, in the key actor for Dask),
so every backend asks the same object and one object owns every key's state.
Nothing here imports the CLI: workers import it.
"""
