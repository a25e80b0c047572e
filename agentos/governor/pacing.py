"""One limit — so many requests, or tokens, per minute — as a pacer that hands out start times.

Providers refill their buckets continuously and enforce them over a short window (a couple of
seconds' worth of the per-minute limit), so a client that sends a minute's allowance in a burst
is refused for most of it, and a client that waits for refusals before slowing down wastes
capacity on 429s and backoff. The pacer does what the provider's bucket does, ahead of it: it is
the Generic Cell Rate Algorithm with costs. `tat` (theoretical arrival time) is when the budget
would be whole again if nothing more were sent; a call of cost c may start at
`max(now, tat - burst/rate)` and moves `tat` on by `c/rate`. Reserving hands the caller its start
time at once, so one round trip to the governor paces a call, and callers are served in the order
they asked: nobody polls, nobody is starved.

Corrections keep it honest: the answer's real token usage replaces the estimate
(`adjust`), and the provider's own account (`x-ratelimit-remaining-*`) pushes `tat` out when the
provider has seen more use than we have (other clients of the same organisation).
"""

from __future__ import annotations

from dataclasses import dataclass

#: pace a little under the stated limit: requests arrive with jitter, and the provider's window
#: forgives less than a minute does
HEADROOM = 0.98


@dataclass
class Pacer:
    """Spaces units (requests or tokens) at `per_minute` (see the module docstring)."""

    per_minute: float
    #: units that may go at once beyond the schedule after an idle spell; none by default: the
    #: provider's window may forgive no more than one call
    burst: float = 0.0
    tat: float = 0.0

    @property
    def rate(self) -> float:
        return self.per_minute * HEADROOM / 60.0

    def start_time(self, cost: float, now: float) -> float:
        """When a call of `cost` units could start, without reserving it."""
        return max(now, self.tat - self.burst / self.rate) if cost > 0 else now

    def reserve(self, cost: float, now: float) -> float:
        """Reserve `cost` units; returns when the call may start (>= now)."""
        start = self.start_time(cost, now)
        self.tat = max(self.tat, now) + cost / self.rate
        return start

    def adjust(self, delta: float) -> None:
        """The call cost `delta` more (or, negative, less) than was reserved."""
        self.tat += delta / self.rate

    def observe(
        self, limit: float | None, remaining: float | None, reset: float | None, now: float
    ) -> None:
        """The provider's account. A smaller `limit` than we believed replaces ours. When it says
        the budget is spent (`remaining` under one unit) and comes back in `reset` seconds, our
        schedule moves out to then: the provider has seen more use than we reserved (another
        client of the same organisation, a restart). Only "spent" is trusted, not the figures
        in between: providers count in windows of their own, fixed or sliding."""
        if limit is not None and 0 < limit < self.per_minute:
            self.per_minute = limit
        if remaining is not None and remaining < 1 and reset is not None:
            self.tat = max(self.tat, now + reset + self.burst / self.rate)

    def backlog(self, now: float) -> float:
        """Seconds of reserved work ahead of a new call (0 when the budget is idle)."""
        return max(0.0, self.tat - self.burst / self.rate - now)
