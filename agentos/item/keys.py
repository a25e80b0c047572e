"""The keys an attempt uses, as the attempt sees them.

Whoever hosts the run's governor (this process for a sequential run, the key server for loky,
a Dask actor: agentos.governor.service, agentos.engine.backends), an attempt reaches it through
something that answers `AttemptKeyService`: the Governor itself, its Manager proxy, or the relay
of a Dask attempt process. A CLI agent's attempt claims the key it was leased; an HTTP agent asks
for a key for each model call (`acquire_call`), waits the delay it is given, and says how the
call ended (`end_call`: a `KeyOutcome` or the provider's `RefusalKind`).

Every call may cross a process boundary: arguments and answers are plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agentos.vocabulary import StrEnum

if TYPE_CHECKING:
    from agentos.item.refusals import RefusalKind


class KeyOutcome(StrEnum):
    """How a lease or a call ended, as the governor is told.

    A lease (`KeyService.release`) ends ok, failed (the item failed: not the key's fault),
    rate_limited (the provider refused: the refusal kind says how the key's group waits),
    revoked (the key itself was refused: retired for the run) or reclaimed (the attempt did not
    run to its end, or its worker died). A call ends ok, with an error that is not a refusal, or
    with the refusal's kind."""

    OK = "ok"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"
    REVOKED = "revoked"
    RECLAIMED = "reclaimed"
    ERROR = "error"


@dataclass(frozen=True)
class CallGrant:
    """The answer to `acquire_call`. With a key: start the call after `delay` seconds. Without
    (`call_id` 0): no key can serve now; ask again after `delay` (inf: none will this run)."""

    call_id: int
    secret: str = field(repr=False)  # an agent that logs its grant must not log the key
    label: str
    delay: float
    reason: str = ""


class AttemptKeyService(Protocol):
    """What an attempt asks of the governor."""

    def claim(self, lease_id: int, holder_pid: int) -> tuple[str, str]:
        """The leased key and its label; `holder_pid` holds the lease from now on."""
        ...

    def acquire_call(
        self, item_id: str, tokens: float | None = None, pinned: str | None = None
    ) -> CallGrant: ...

    def confirm_call(self, call_id: int) -> bool: ...

    def end_call(
        self, call_id: int, outcome: KeyOutcome | RefusalKind, info: dict[str, Any] | None = None
    ) -> str: ...
