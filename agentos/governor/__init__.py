"""The rate governor: run at the providers' limits, not into them.

    credentials.py  keys as the user gives them: KeyConfig, labels, redaction, leases
    pacing.py       one limit (requests or tokens per minute) as a pacer that reserves start times
    adaptive.py     a rate learned from refusals alone, when nothing states the limit
    evidence.py     a rate refusal judged: a limit, or noise
    group.py        KeyGroup: the budgets the keys of one organisation share, and their learning
    keys.py         Key and the KeyRing that holds the keys and their groups
    outages.py      parks (quota), requests per day, the provider overloaded
    leases.py       per-item leases;  calls.py: per-call grants
    report.py       what the run shows of the keys;  notices.py: what changed, for the user
    governor.py     Governor: the facade, one lock over all of the above
    parked.py       keys out of quota, remembered across runs (by fingerprint, never the key)
    service.py      the Manager process that serves a Governor to loky workers
    protocol.py     KeyService (what the parent asks of it, wherever it is hosted), KeyState

What a provider's answer says (rate-limit headers, the four kinds of "no") is read on the item's
side, agentos.item.refusals.

The governor lives in-process for sequential runs, in the key-server process for loky, in the key
actor for Dask, so every backend asks the same object. Nothing here imports the CLI: workers
import it.
"""
