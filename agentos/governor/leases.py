"""Per-item leases (CLI agents, `agentos run`): a subprocess reads its key once, from its
environment, so an attempt holds a key for its whole length.

A key takes `slots` items at once (default 1). A lease goes to the least loaded usable key, then
the least recently used: items spread over keys and groups. None is given on a key that is
cooling after a rate limit, retired, parked or out of its day's requests, nor while the provider
is overloaded. How a lease ends (`release`) moves the key: a rate limit cools it (the
provider's retry-after, else exponential), a quota refusal parks its group, a rejection retires
it. The parent does the bookkeeping, so a lease cannot be lost when a worker dies; leases whose
holder process is gone are also taken back here, when a key is wanted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from agentos.governor.clocks import Clocks
from agentos.governor.credentials import Lease
from agentos.governor.keys import Cooldown, Key, KeyRing
from agentos.governor.outages import Outages
from agentos.item.keys import KeyOutcome
from agentos.item.process_tree import pid_alive
from agentos.item.refusal_kinds import RefusalKind


@dataclass
class _LeaseRecord:
    """A lease held: its key, its item, the process that claimed it."""

    key: Key
    item_id: str
    holder_pid: int = 0


class Leases:
    """The active leases. `ids` is shared with the calls: a lease id is never a call id."""

    def __init__(
        self,
        ring: KeyRing,
        outages: Outages,
        clocks: Clocks,
        ids: Iterator[int],
        cooldown: Cooldown,
    ) -> None:
        self._ring = ring
        self._outages = outages
        self._clocks = clocks
        self._ids = ids
        self._cooldown = cooldown
        self._records: dict[int, _LeaseRecord] = {}

    def take(self, item_id: str, holder_pid: int) -> Lease | None:
        """A lease on a key with a free slot now, or None."""
        key = self._pick()
        if key is None and self._reclaim_dead_holders():
            key = self._pick()
        if key is None:
            return None
        lease_id = next(self._ids)
        key.leases.add(lease_id)
        key.last_used = self._clocks.monotonic()
        key.lease_count += 1
        self._records[lease_id] = _LeaseRecord(key, item_id, holder_pid)
        return Lease(lease_id, key.label, item_id)

    def lease_label(self, label: str, item_id: str) -> Lease | None:
        """Mark `label` leased to `item_id` now, whatever its state."""
        key = self._ring.find(label)
        if key is None:
            return None
        lease_id = next(self._ids)
        key.leases.add(lease_id)
        self._records[lease_id] = _LeaseRecord(key, item_id)
        return Lease(lease_id, label, item_id)

    def claim(self, lease_id: int, holder_pid: int) -> tuple[str, str]:
        """The key behind a lease, for the process that will use it."""
        record = self._records.get(lease_id)
        if record is None:
            raise KeyError(f"lease {lease_id} is not active (reclaimed or released)")
        record.holder_pid = holder_pid
        return record.key.credential.secret, record.key.label

    def release(
        self, lease_id: int, outcome: KeyOutcome, retry_after: float | None, kind: str
    ) -> float | None:
        """End a lease; None when it was not active, else the cooldown applied to its key."""
        record = self._records.pop(lease_id, None)
        if record is None:
            return None
        key = record.key
        key.leases.discard(lease_id)
        cooldown = 0.0
        if outcome in (KeyOutcome.RATE_LIMITED, KeyOutcome.REVOKED):
            said = (
                (kind or RefusalKind.RATE)
                if outcome == KeyOutcome.RATE_LIMITED
                else RefusalKind.REJECTED
            )
            key.group.refusals[said] = key.group.refusals.get(said, 0) + 1
        if outcome == KeyOutcome.RATE_LIMITED and kind == RefusalKind.QUOTA:
            self._outages.park_for(key, retry_after)
        elif outcome == KeyOutcome.RATE_LIMITED and kind == RefusalKind.OVERLOADED:
            self._outages.overloaded(retry_after)
        elif outcome == KeyOutcome.RATE_LIMITED:
            key.strikes += 1
            cooldown = self._cooldown.seconds(key.strikes, retry_after, self._clocks.random)
            key.cooling_until = self._clocks.monotonic() + cooldown
        elif outcome == KeyOutcome.REVOKED:
            key.revoked = True
        elif outcome == KeyOutcome.OK:
            key.strikes = 0
            self._outages.answered()
        return cooldown

    def drop(self, item_ids: list[str] | None, holder_pid: int | None) -> list[str]:
        """End the leases of these items / this holder, whatever their state; their labels."""
        freed = []
        for lease_id, record in list(self._records.items()):
            if (item_ids is not None and record.item_id in item_ids) or (
                holder_pid is not None and record.holder_pid == holder_pid
            ):
                freed.append(record.key.label)
                record.key.leases.discard(lease_id)
                del self._records[lease_id]
        return freed

    def _pick(self) -> Key | None:
        now = self._clocks.monotonic()
        if self._outages.overload_until > now:
            return None
        free = [
            k
            for k in self._ring
            if len(k.leases) < k.slots and self._outages.usable(k) and k.cooling_until <= now
        ]
        # least loaded first, then least recently used: spreads items over keys and groups
        return min(free, key=lambda k: (len(k.leases) / k.slots, k.last_used)) if free else None

    def _reclaim_dead_holders(self) -> bool:
        dead = [
            lease_id
            for lease_id, r in self._records.items()
            if r.holder_pid and not pid_alive(r.holder_pid)
        ]
        for lease_id in dead:
            record = self._records.pop(lease_id)
            record.key.leases.discard(lease_id)
        return bool(dead)
