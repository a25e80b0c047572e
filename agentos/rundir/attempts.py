"""An attempt's result: what a worker hands back to the parent, and the journal records.

Every backend returns one per attempt (a worker's, or one the parent makes up for an attempt
that could not report: `reported=False`); `agentos.rundir.journal` writes it as a line.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentos.rundir.statuses import Status
from agentos.usage.record import UsageLog


@dataclass(eq=False)
class AttemptResult:
    """How one attempt of one item ended: what a worker sends back and the journal records."""

    item_id: str
    attempt: int
    status: Status
    started: float  # epoch seconds
    runtime: float
    exit_code: int = 0
    signal: int = 0
    error: str = ""
    retry_after: float | None = None
    key_label: str | None = None
    worker_pid: int = 0
    command: str = ""
    refusal: str = ""  # the kind of "no" when rate limited (a RefusalKind)
    detail: str = ""  # how a done item ended, in a word ("Draft"): ItemContext.detail
    outputs: dict[str, str] | None = None  # what the item produced: ItemContext.outputs
    #: seconds the attempt's calls waited for the governor, by reason (the journal says why)
    waits: dict[str, float] | None = None
    #: the attempt's model calls (ItemContext.record_usage, the CLI usage file); None: none
    usage: UsageLog | None = None
    #: False when another attempt cannot help (the item is over its budget)
    retry: bool = True
    #: False when the parent made this result up because the attempt could not report how it
    #: ended (its worker was killed or died): what it spent is then read from its usage files
    reported: bool = True
