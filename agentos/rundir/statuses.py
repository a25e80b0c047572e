"""The words a run directory holds for where an item is and what a run is doing.

`Status` is an item's status (summary.json, state.json, `agentos status`) and the status of each
of its attempts (journal.jsonl, the report). `Phase` is the run's (state.json). Both are str
enums whose values are exactly what the files hold, so run directories written by any version
read back the same: `Status(record["status"])` and `record["status"] == Status.DONE` both work.
"""

from __future__ import annotations

from agentos.vocabulary import StrEnum


class Status(StrEnum):
    """How an attempt ended, and where its item stands.

    An attempt ends done, failed, rate_limited (the provider refused: the item goes again with
    another key), rejected (the key was refused: likewise), timeout or interrupted; not_started
    is an attempt a worker had queued when the run began to drain, never journaled. An item is
    pending, then running, and ends done, failed, timeout, interrupted (a resume reruns it) or
    "not run" (the run stopped before it started)."""

    DONE = "done"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    NOT_STARTED = "not_started"
    PENDING = "pending"
    RUNNING = "running"
    NOT_RUN = "not run"


#: where an item can end, in the order the summary counts them
FINAL_STATUSES = (Status.DONE, Status.FAILED, Status.TIMEOUT, Status.INTERRUPTED, Status.NOT_RUN)
#: what went wrong: the report shows these items' log tails (interrupted and not-run items did
#: not fail)
FAILED_ATTEMPTS = (Status.FAILED, Status.TIMEOUT, Status.RATE_LIMITED, Status.REJECTED)


class Phase(StrEnum):
    """What the run is doing: starting, running, draining (a first Ctrl+C: no new item starts,
    the running ones finish), terminating (the running ones are being stopped), done. `agentos
    status` says gone of a run whose parent ended without saying done."""

    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    TERMINATING = "terminating"
    DONE = "done"
    GONE = "gone"
