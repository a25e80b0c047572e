"""What the governor shows of its keys: the counts the progress line and the runner's "every key
is out" decisions read (`KeyStatus`), and one row per key for the summary and `agentos keys`."""

from __future__ import annotations

from dataclasses import dataclass

from agentos.governor.clocks import Clocks
from agentos.governor.keys import Key, KeyRing
from agentos.governor.outages import FOREVER, Outages
from agentos.governor.states import KeyState


@dataclass
class KeyStatus:
    """How many keys are free, leased, cooling, revoked or parked, and when one comes back."""

    total: int
    free: int
    leased: int
    cooling: int
    revoked: int
    next_free_in: float | None  # seconds until a cooling key comes back; None if none cools
    parked: int = 0
    #: seconds until any key can serve again when none can now (inf: not this run), else None
    all_out_for: float | None = None
    #: wall-clock time (epoch) the earliest parked key comes back, when every key is out
    back_at: float | None = None
    #: groups slowed by a learned pace: "pacing org-a at 42 req/min after 3 refusals in 10 s"
    pacing: tuple[str, ...] = ()


class KeyReport:
    """Reads the key ring and the outages; owns nothing."""

    def __init__(self, ring: KeyRing, outages: Outages, clocks: Clocks) -> None:
        self._ring = ring
        self._outages = outages
        self._clocks = clocks

    def status(self) -> KeyStatus:
        keys, outages = self._ring.keys, self._outages
        now = self._clocks.monotonic()
        leased = sum(1 for k in keys if k.leases and not k.revoked)
        revoked = sum(1 for k in keys if k.revoked)
        parked = sum(1 for k in keys if not k.revoked and outages.parked(k))
        cooling = sum(
            1
            for k in keys
            if not k.leases and not k.revoked and not outages.parked(k) and k.cooling_until > now
        )
        wake = self._ring.next_cooldown_end(now)
        all_out_for = back_at = None
        if keys and not any(outages.usable(k) for k in keys):
            all_out_for, _ = outages.why_none(keys)
            parks = [k.group.parked_until for k in keys if not k.revoked]
            back_at = min(parks) if parks else None
        return KeyStatus(
            total=len(keys),
            free=len(keys) - leased - revoked - cooling - parked,
            leased=leased,
            cooling=cooling,
            revoked=revoked,
            next_free_in=None if wake is None else max(0.0, wake),
            parked=parked,
            all_out_for=all_out_for,
            back_at=back_at,
            pacing=tuple(n for g in self._ring.groups.values() if (n := g.pace_note())),
        )

    def snapshot(self) -> list[dict[str, object]]:
        """Every key: label, fingerprint, group, state, leases, calls, the group's limits and
        refusals, parked-until (epoch, or "run"). What the summary and `agentos keys` show."""
        now = self._clocks.monotonic()
        return [self._row(k, now) for k in self._ring.keys]

    def _row(self, k: Key, now: float) -> dict[str, object]:
        g = k.group
        parked = self._outages.parked(k)
        state = (
            KeyState.REVOKED
            if k.revoked
            else KeyState.PARKED
            if parked
            else KeyState.LEASED
            if k.leases
            else KeyState.COOLING
            if k.cooling_until > now
            else KeyState.FREE
        )
        return {
            "label": k.label,
            "fingerprint": k.credential.fingerprint,
            "group": g.name,
            "state": state,
            "leases": k.lease_count,
            "calls": k.calls,
            "rpm": _rounded(g.requests.per_minute if g.requests else None),
            "tpm": _rounded(g.tokens.per_minute if g.tokens else None),
            "rpd": g.per_day,
            "refusals": dict(g.refusals),
            "parked_until": _parked_value(g.parked_until) if parked else None,
            "park_reason": g.park_reason if parked else "",
            **g.report(),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _parked_value(until: float) -> float | str:
    return "run" if until == FOREVER else round(until, 3)
