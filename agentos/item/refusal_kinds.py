"""The four kinds of a provider's "no".

A refusal is not one thing, and treating every refusal as "rate limited, cool the key" is what
made the project this tool comes from freeze its parallel mode:

    kind          what it means                         what to do
    ----          -------------                         ----------
    rate          too many requests/tokens this minute  wait for the stated reset (seconds), go on
    quota         the key's (organisation's) allowance  park the key until the stated reset, or
                  is spent: per day, billing, plan      for the run; another key may go on
    overloaded    the provider has no capacity (503,    back off everyone, briefly: it is not the
                  529, MODEL_CAPACITY_EXHAUSTED)        key's fault and another key will not help
    rejected      the key itself is refused (401/403)   retire the key for the run

Which kind an answer is, `agentos.item.refusals` reads.
"""

from __future__ import annotations

from agentos.vocabulary import StrEnum


class RefusalKind(StrEnum):
    """The kind of a provider's "no" (the table above): what the journal's `refusal` field,
    `RateLimited.kind` and the governor's call outcomes say."""

    RATE = "rate"
    QUOTA = "quota"
    OVERLOADED = "overloaded"
    REJECTED = "rejected"
