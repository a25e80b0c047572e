"""A request rate learned from refusals alone, for providers that state no limit anywhere.

With no configured limit, no `x-ratelimit-*` headers and no "Limit N" in the 429 body, the only
signal is the 429 itself. Additive increase, multiplicative decrease (TCP's rule, as inspect_ai
and promptfoo use for concurrency) converges on it: every success raises the rate a little, every
refusal cuts it by a fifth. The first refusal sets the rate from what actually succeeded in the
last few seconds, so the first cut lands near the limit instead of far above or below it.

At a steady limit L the rate saws between 0.8 L and L, refusing once per rise, which takes
0.2 L / STEP successes: about 0.9 L on average, a refusal per 24 successes at 60/min.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

DECREASE = 0.8
STEP = 0.5  # requests/min added per success
WINDOW = 10.0  # seconds of successes the first estimate looks at
FLOOR = 1.0  # requests/min: never stop altogether


@dataclass
class AdaptiveRate:
    per_minute: float | None = None  # None: no refusal yet, nothing to pace by
    _successes: deque[float] = field(default_factory=deque)

    def on_success(self, now: float) -> None:
        self._successes.append(now)
        while self._successes and self._successes[0] < now - WINDOW:
            self._successes.popleft()
        if self.per_minute is not None:
            self.per_minute += STEP

    def on_refusal(self, now: float) -> float:
        """A rate refusal: the new rate (requests per minute)."""
        if self.per_minute is None:
            recent = sum(1 for t in self._successes if t >= now - WINDOW)
            self.per_minute = max(FLOOR, recent * 60.0 / WINDOW)
        self.per_minute = max(FLOOR, self.per_minute * DECREASE)
        return self.per_minute
