"""Is a rate refusal evidence of a limit, or noise?

Providers refuse for two reasons that look alike, a `429`. A *limit* refuses because the client
sends faster than its budget: slowing down makes the refusals stop. *Noise* refuses at random,
whatever the rate: an overloaded moment, a new organisation's acceleration limits, a gateway in
front of the API. Treating noise as a limit is how a client collapses: every refusal cuts the
rate, the refusals go on at the lower rate, and the rate falls towards nothing.

A refusal is evidence of a limit when something ties it to the rate, in this order:

    the answer's headers say a budget is spent (remaining requests < 1, tokens < the call's)
    the body names a per-minute limit ("on requests per min (RPM): Limit 60")
    the provider asks for a long wait (retry-after beyond NOISE_MAX_WAIT: a window, not a moment)
      -- the headers are there and show budget left: noise (the provider's own account)
    refusals are frequent: at least MIN_REFUSALS among at least MIN_CALLS calls in the last
      WINDOW seconds (sent since the group last slowed down), a larger share than the noise the
      group has learned to expect at its rate, plus a margin for chance

A refusal with no answer around it (the group's first call, or every recent one refused) is
taken as a limit too: waiting its retry-after costs little. Anything else is noise: a lone
refusal with a short retry-after among answers. The group's
`Outcomes` (what came back, when it was sent) and its AdaptiveRate's record of refusals per
rate feed the last two rules.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

from agentos.vocabulary import StrEnum

#: seconds of outcomes a judgement looks at
WINDOW = 10.0
#: a refusal asking for more than this many seconds speaks of a spent window, not a moment
NOISE_MAX_WAIT = 5.0
#: fewer refusals than this in WINDOW seconds are lone, whatever their share
MIN_REFUSALS = 2
#: fewer calls than this in WINDOW seconds (since the last cut) cannot tell a limit from chance
MIN_CALLS = 8
#: the least margin above the expected noise a refusal share must exceed to be a limit
MARGIN = 0.1
#: the refusal share taken as noise until the group has run slower and seen what the share is
#: there: a few random refusals in every ten calls do not make a limit
NOISE_PRIOR = 0.15
#: seconds of outcomes kept (the answer rate "observed working" looks this far back)
MEMORY = 60.0
#: the span over which an answer rate counts as sustained (shorter spans see a window's burst)
SUSTAINED = 20.0
#: the shortest span a rate is measured over
MIN_SPAN = 0.5


class Cause(StrEnum):
    """Why a provider refused, as far as the evidence shows."""

    LIMIT = "limit"
    NOISE = "noise"


@dataclass(frozen=True)
class Verdict:
    """Whether a group's refusals show a limit or the provider's noise, and why, in words."""

    cause: Cause
    why: str  # in words, for the user: "3 refusals in 10 s", "a lone refusal among 40 answers"


@dataclass(frozen=True)
class Outcome:
    """One call: when it was sent, when it came back, whether it was refused."""

    sent: float  # when the call was allowed to start (monotonic)
    done: float  # when it came back
    refused: bool


@dataclass(frozen=True)
class Tally:
    """Calls sent over a stretch of time, and what became of them."""

    calls: int = 0
    refused: int = 0
    first_sent: float = float("inf")
    last_sent: float = float("-inf")

    @property
    def share(self) -> float:
        return self.refused / self.calls if self.calls else 0.0

    @property
    def span(self) -> float:
        """Seconds the calls took to send: n calls sent over n - 1 gaps span n gaps' time."""
        if not self.calls:
            return WINDOW
        gaps = self.last_sent - self.first_sent
        return max(MIN_SPAN, gaps * self.calls / (self.calls - 1) if self.calls > 1 else gaps)

    @property
    def rate(self) -> float:
        """Calls per minute sent."""
        return self.calls * 60.0 / self.span

    @property
    def answer_rate(self) -> float:
        """Answers per minute the sending turned into."""
        return (self.calls - self.refused) * 60.0 / self.span


class Outcomes:
    """A group's recent calls, in the order they came back, kept for MEMORY seconds."""

    def __init__(self) -> None:
        self._log: deque[Outcome] = deque()
        #: how long an answer takes (a moving average): refusals come back at once, answers
        #: after this, so calls sent in the last `latency` seconds are not counted yet
        self.latency: float | None = None

    def add(self, sent: float, done: float, refused: bool) -> None:
        self._log.append(Outcome(sent, done, refused))
        if not refused:
            took = max(0.0, done - sent)
            self.latency = (
                took if self.latency is None else self.latency + (took - self.latency) / 8
            )
        while self._log and self._log[0].done < done - MEMORY:
            self._log.popleft()

    def recent(self, now: float, seconds: float = WINDOW) -> tuple[int, int]:
        """(calls, refusals) that came back in the last `seconds`."""
        calls = refused = 0
        for o in reversed(self._log):
            if o.done < now - seconds:
                break
            calls += 1
            refused += o.refused
        return calls, refused

    def tally(self, now: float, start: float, end: float = float("inf")) -> Tally:
        """The calls sent from `start` to `end` whose outcome is known: sent at least one
        answer's latency ago (else the quick refusals would be counted before the slow
        answers)."""
        until = min(end, now - (self.latency or 0.0))
        calls = refused = 0
        first, last = float("inf"), float("-inf")
        for o in self._log:
            if start <= o.sent <= until:
                calls += 1
                refused += o.refused
                first, last = min(first, o.sent), max(last, o.sent)
        return Tally(calls, refused, first, last)

    def sent_rate(self, now: float) -> float:
        """Calls per minute sent in the last WINDOW seconds (those that came back), over the span
        the group has been sending when it is younger than that."""
        start = now - WINDOW
        sent = [o.sent for o in self._log if o.sent >= start]
        if not sent:
            return 0.0
        span = max(1.0, min(WINDOW, now - min(sent)))
        return len(sent) * 60.0 / span

    def answer_rate(self, now: float) -> float:
        """Answers per minute that came back in the last WINDOW seconds, over the whole window
        (never more than the provider showed, however young the group)."""
        calls, refused = self.recent(now)
        return (calls - refused) * 60.0 / WINDOW

    def answers_sent_since(self, sent: float) -> list[float]:
        """When the answers (not refusals) of calls sent at or after `sent` came back."""
        return [o.done for o in self._log if not o.refused and o.sent >= sent]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def margin(noise: float, calls: int) -> float:
    """How far above the expected noise a refusal share may stray by chance: two standard
    deviations of a binomial share over `calls`, and at least MARGIN."""
    p = max(noise, 0.05)
    return max(MARGIN, 2.0 * math.sqrt(p * (1 - p) / max(1, calls)))


class _Counts(TypedDict):
    calls: int  # the group's recent calls, this one included
    refused: int  # and refusals among them, this one included


class Evidence(_Counts, total=False):
    """What `judge` weighs besides the refusal itself (the optional figures default to
    nothing known)."""

    noise: float  # the refusal share the group has learned to expect at its rate (0)
    tokens: float  # the refused call's estimate (0)
    refused_before: bool  # the group sends near a rate whose refusals were judged a limit
    min_calls: int  # the calls needed to tell a limit from chance (MIN_CALLS)
    answers_around: int | None  # the group's answers in the last WINDOW s (None: among calls)


def judge(info: Mapping[str, Any], **evidence: Unpack[Evidence]) -> Verdict:
    """The cause of one rate refusal. `info`: what the refusal said (the figures of
    item.refusals: remaining_*, limit_*, wait); `evidence`: the group's recent record."""
    calls, refused = evidence["calls"], evidence["refused"]
    noise = evidence.get("noise", 0.0)
    tokens = evidence.get("tokens", 0.0)
    answers_around = evidence.get("answers_around")
    remaining_requests = _number(info.get("remaining_requests"))
    remaining_tokens = _number(info.get("remaining_tokens"))
    if remaining_requests is not None and remaining_requests < 1:
        return Verdict(Cause.LIMIT, "a refusal saying no requests are left this minute")
    if remaining_tokens is not None and remaining_tokens < max(1.0, tokens):
        return Verdict(Cause.LIMIT, "a refusal saying too few tokens are left this minute")
    limit = _number(info.get("limit"))
    if limit and info.get("limit_per") == "min":
        unit = info.get("limit_unit") or "requests"
        return Verdict(Cause.LIMIT, f"a refusal naming a limit of {limit:g} {unit}/min")
    wait = _number(info.get("wait"))
    if wait is not None and wait > NOISE_MAX_WAIT:
        return Verdict(Cause.LIMIT, f"a refusal asking for {wait:.0f} s")
    if remaining_requests is not None or remaining_tokens is not None:
        return Verdict(Cause.NOISE, "a refusal whose headers show budget left")
    if evidence.get("refused_before", False):
        return Verdict(Cause.LIMIT, "a refusal at a rate refused before")
    answers = calls - refused
    if not (answers if answers_around is None else answers_around):
        # noise is a refusal among answers; one with none around it may be a spent window
        return Verdict(Cause.LIMIT, "a refusal with no answer around it")
    if refused < MIN_REFUSALS:
        return Verdict(Cause.NOISE, f"a lone refusal among {answers} answers")
    if calls < evidence.get("min_calls", MIN_CALLS):
        return Verdict(Cause.NOISE, f"{refused} refusals in {calls} calls, too few to tell")
    share = refused / calls
    if share <= noise + margin(noise, calls):
        return Verdict(
            Cause.NOISE, f"{refused} refusals in {calls} calls, no more than the usual noise"
        )
    return Verdict(Cause.LIMIT, f"{refused} refusals in {WINDOW:.0f} s")
