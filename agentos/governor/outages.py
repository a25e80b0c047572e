"""When keys cannot serve, beyond their own pace: a group parked out of quota (until the stated
reset, or for the run; remembered across runs by fingerprint), a group whose requests per day
are spent, and the provider overloaded (everybody backs off, exponentially, until a success).
`Outages` says whether a key may serve now and, when none may, for how long and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from agentos.governor.clocks import Clocks
from agentos.governor.group import KeyGroup
from agentos.governor.keys import Key
from agentos.governor.notices import Notices

#: a first overload costs a quarter second; consecutive ones double it (not the key's fault, and
#: one 529 among hundreds of answers is the provider's noise, not a reason to stop for long)
OVERLOAD_BASE = 0.25
OVERLOAD_MAX = 60.0
FOREVER = math.inf
#: a park for the run, remembered for the next runs: a quota with no stated reset
REMEMBER_RUN_PARK = 86400.0


class Outages:
    """The overload backoff, and the parks (this run's and those remembered from earlier runs:
    key fingerprint -> (until, reason))."""

    def __init__(
        self, clocks: Clocks, notices: Notices, remembered: dict[str, tuple[float, str]]
    ) -> None:
        self._clocks = clocks
        self._notices = notices
        self._remembered = dict(remembered)
        self.overload_until = 0.0  # monotonic
        self._overload_strikes = 0

    # -- parks
    def recall(self, key: Key) -> None:
        """A key new to the run: parked again if an earlier run parked it past now."""
        remembered = self._remembered.get(key.credential.full_fingerprint)
        if remembered and remembered[0] > self._clocks.wall():
            self.park(key.group, remembered[0], remembered[1], announce=False)

    def park(self, group: KeyGroup, until: float, reason: str, *, announce: bool = True) -> str:
        """Park `group` until `until` (wall clock; FOREVER: the run). Returns the notice, ""
        when the group was parked as long already."""
        notice = group.park(until, reason)
        if notice and announce:
            self._notices.add(notice)
        return notice

    def park_for(self, key: Key, wait: float | None) -> str:
        """A quota refusal: the key's group is parked for the stated `wait`, else for the run."""
        until = self._clocks.wall() + wait if wait is not None else FOREVER
        return self.park(key.group, until, f"{key.label}: out of quota")

    def parked(self, key: Key) -> bool:
        return key.group.parked(self._clocks.wall())

    def usable(self, key: Key) -> bool:
        """Not retired, not parked, not out of its group's requests for the day."""
        group, wall = key.group, self._clocks.wall()
        return not key.revoked and not group.parked(wall) and not group.out_for_today(wall)

    def parked_keys(self, keys: Iterable[Key]) -> dict[str, tuple[float, str]]:
        """Full fingerprint -> (until, reason) of every parked key, to remember across runs
        (keys parked for the run only are remembered for a day: a quota with no stated
        reset)."""
        wall = self._clocks.wall()
        found = {}
        for k in keys:
            if k.group.parked(wall):
                until = k.group.parked_until
                found[k.credential.full_fingerprint] = (
                    until if until != FOREVER else wall + REMEMBER_RUN_PARK,
                    k.group.park_reason,
                )
        return found

    def why_none(self, keys: list[Key]) -> tuple[float, str]:
        """Seconds until one of `keys` could serve (inf: none this run), and why none can
        now."""
        wall = self._clocks.wall()
        if not keys or all(k.revoked for k in keys):
            return FOREVER, "every key was rejected by the provider"
        backs = []
        for k in keys:
            if k.revoked:
                continue
            if k.group.parked(wall):
                backs.append(k.group.parked_until - wall)
            elif k.group.out_for_today(wall):
                backs.append(86400.0 - wall % 86400.0)  # until midnight UTC
        soonest = min(backs) if backs else 1.0
        return max(0.05, soonest), "every key is out of quota"

    # -- the provider overloaded
    def overloaded(self, wait: float | None) -> None:
        """Everybody backs off: exponentially per overload in a row, with jitter, and at least
        the provider's `wait`."""
        self._overload_strikes += 1
        backoff = min(OVERLOAD_BASE * 2 ** (self._overload_strikes - 1), OVERLOAD_MAX)
        backoff *= self._clocks.random.uniform(0.8, 1.2)
        self.overload_until = self._clocks.monotonic() + max(backoff, wait or 0.0)
        if self._overload_strikes == 1:
            self._notices.add("the provider is overloaded; backing off")

    def answered(self) -> None:
        """A success: the next overload starts the backoff afresh."""
        self._overload_strikes = 0

    def overload_left(self, now: float) -> float | None:
        """Seconds of overload backoff left; None when there is none."""
        return self.overload_until - now if self.overload_until > now else None
