"""The governor as the parent sees it, wherever the backend hosts it.

In this process for a sequential run, in the key server process for loky (the parent holds a
Manager proxy: agentos.governor.service), in a Dask actor (the parent holds `ActorKeys`): each
answers `KeyService`, what the batch asks (agentos.engine.batch). An attempt's side is
`agentos.item.keys.AttemptKeyService`; the Governor and its proxy answer both (`GovernorHandle`).

Every call may cross a process boundary: arguments and answers are plain values, and a lost
connection surfaces as EOFError or OSError (ConnectionError), which the batch turns into
KeyServerLost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from agentos.item.keys import AttemptKeyService, KeyOutcome

if TYPE_CHECKING:
    from agentos.governor.credentials import Lease
    from agentos.governor.report import KeyStatus


class KeyService(Protocol):
    """What the parent asks of the governor."""

    def acquire(self, item_id: str, timeout: float = 0.0, holder_pid: int = 0) -> Lease | None: ...

    def release(
        self,
        lease_id: int,
        outcome: KeyOutcome = KeyOutcome.OK,
        retry_after: float | None = None,
        kind: str = "",
    ) -> float:
        """End a lease; `kind`: the RefusalKind of a rate_limited one. Returns the cooldown."""
        ...

    def reclaim(
        self, item_ids: list[str] | None = None, holder_pid: int | None = None
    ) -> list[str]: ...

    def status(self) -> KeyStatus: ...

    def snapshot(self) -> list[dict[str, object]]: ...

    def events(self) -> list[str]: ...

    def parked_keys(self) -> dict[str, tuple[float, str]]: ...


class GovernorHandle(KeyService, AttemptKeyService, Protocol):
    """The Governor itself or its Manager proxy: it answers the parent and the attempts alike."""
