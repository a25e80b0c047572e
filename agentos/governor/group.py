"""A key group: the keys of one organisation (or project), and the budgets they share.

    KeyGroup ── requests Pacer (RPM: configured, else stated by the provider, else learned:
       │                        AdaptiveRate, from refusals judged by evidence.py)
       ├──── tokens Pacer   (TPM: configured or stated)
       ├──── requests per day, parked-until (a quota refusal)
       ├──── window: calls in flight while the limits are unknown (slow start)
       └──── what it decided, for the user: the pace and why, refusals by kind, seconds waited

The group owns its learning: `answered` takes an answer's figures, `rate_refused` judges a rate
refusal (a limit, or noise) and moves the pace on evidence only. Both return notices — one line
per change of pace — for the run's output. A quota refusal parks the group (`park`); its
requests per day are counted per UTC day. The governor's parts own keys, calls and leases; the
Governor holds the lock around every method here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from agentos.governor.adaptive import AdaptiveRate, Change
from agentos.governor.credentials import KeyConfig
from agentos.governor.evidence import MIN_CALLS, NOISE_PRIOR, Cause, Verdict, judge
from agentos.governor.pacing import Pacer
from agentos.item.refusal_kinds import RefusalKind
from agentos.vocabulary import StrEnum

DEFAULT_TOKENS_PER_CALL = 1000.0
DEFAULT_OUTPUT_TOKENS = 300.0  # an answer's size before the group's first usage is seen
WINDOW_MAX = 256.0


class RateSource(StrEnum):
    """Where a group's requests/min comes from."""

    NONE = ""  # nothing yet: not paced (held to its window)
    CONFIGURED = "configured"  # the credentials file or --key-rpm
    STATED = "stated"  # the provider's headers or a refusal's "Limit N"
    LEARNED = "learned"  # from refusals judged to be a limit


@dataclass
class KeyGroup:
    """The keys of one provider group (organisation or project): the limits they share, how
    they are paced, and what the group has learned."""

    name: str
    requests: Pacer | None = None
    tokens: Pacer | None = None
    requests_source: RateSource = RateSource.NONE
    tokens_configured: bool = False
    adaptive: AdaptiveRate = field(default_factory=AdaptiveRate)
    per_day: float | None = None
    used_today: int = 0
    today: int = 0  # the UTC day `used_today` counts (days since the epoch)
    parked_until: float = 0.0  # wall clock; inf: for the run
    park_reason: str = ""
    tokens_per_call: float = DEFAULT_TOKENS_PER_CALL
    output_per_call: float = DEFAULT_OUTPUT_TOKENS  # learned from the answers' usage
    #: the group was named in the credentials file or on the command line: the provider's
    #: word about organisations does not move its keys
    named: bool = False
    #: the group's name is the provider's organisation (from its answers)
    from_provider: bool = False
    #: calls in flight allowed while the group's limits are unknown: slow start from one (a
    #: group whose first answer has not come back may be refusing everything), doubling per
    #: round of successes, halved by a refusal judged a limit
    window: float = 1.0
    in_flight: int = 0
    calls: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # by RefusalKind
    #: rate refusals judged noise (also counted in refusals["rate"])
    noise_refusals: int = 0
    waited: float = 0.0  # seconds calls of this group were told to wait before starting
    held_until: float = 0.0  # monotonic: a limit's reset every call waits for
    hold_reason: str = ""
    #: why the requests pace is what it is, in words ("after 3 refusals in 10 s")
    pace_reason: str = ""

    # -- configuration
    def configure(self, config: KeyConfig) -> None:
        """A key's configured limits: the strictest of the group's keys wins."""
        if config.rpm and (self.requests is None or config.rpm < self.requests.per_minute):
            self.requests, self.requests_source = Pacer(config.rpm), RateSource.CONFIGURED
            self.pace_reason = "configured"
        if config.tpm and (self.tokens is None or config.tpm < self.tokens.per_minute):
            self.tokens, self.tokens_configured = Pacer(config.tpm), True
        if config.rpd and (self.per_day is None or config.rpd < self.per_day):
            self.per_day = float(config.rpd)

    # -- per call
    def estimate(self, prompt: float | None) -> float:
        return self.tokens_per_call if prompt is None else prompt + self.output_per_call

    def window_full(self) -> bool:
        """Only groups with no stated or configured requests limit are held to a window: a
        known limit is paced, which is better than counting."""
        known = self.requests_source in (RateSource.CONFIGURED, RateSource.STATED)
        return not known and self.in_flight >= int(self.window)

    def start_time(self, tokens: float, now: float) -> float:
        start = now
        if self.requests is not None:
            start = max(start, self.requests.start_time(1, now))
        if self.tokens is not None:
            start = max(start, self.tokens.start_time(tokens, now))
        return start

    def reserve(self, tokens: float, now: float) -> float:
        start = now
        if self.requests is not None:
            start = max(start, self.requests.reserve(1, now))
        if self.tokens is not None:
            start = max(start, self.tokens.reserve(tokens, now))
        return start

    def hold(self, seconds: float, now: float, reason: str) -> None:
        """Every call of the group waits `seconds` (a limit's reset), for `reason`."""
        self.held_until, self.hold_reason = max(self.held_until, now + seconds), reason
        for pacer in (self.requests, self.tokens):
            if pacer is not None:
                pacer.tat = max(pacer.tat, now + seconds + pacer.burst / pacer.rate)

    @property
    def paced(self) -> bool:
        return self.requests is not None or self.tokens is not None

    # -- out of quota
    def parked(self, wall: float) -> bool:
        return self.parked_until > wall

    def park(self, until: float, reason: str) -> str:
        """Out of quota until `until` (wall clock; inf: for the run). Returns the notice, or ""
        when the group was already parked as long."""
        if until <= self.parked_until:
            return ""
        self.parked_until, self.park_reason = until, reason
        when = (
            "for the rest of the run"
            if until == math.inf
            else "until " + time.strftime("%H:%M UTC", time.gmtime(until))
        )
        return f"{reason}; group {self.name} parked {when}"

    def out_for_today(self, wall: float) -> bool:
        """The group's requests per day are spent (counted per UTC day)."""
        if self.per_day is None:
            return False
        today = int(wall // 86400)
        if today != self.today:  # a run past midnight UTC starts the new day's count
            self.today, self.used_today = today, 0
        return self.used_today >= self.per_day

    # -- what the answers say
    def learn(self, info: dict[str, Any], now: float) -> list[str]:
        """Limits the answer states, where none was configured. Returns notices of changes."""
        notices: list[str] = []
        lr, lt = info.get("limit_requests"), info.get("limit_tokens")
        if (
            isinstance(lr, (int, float))
            and lr > 0
            and self.requests_source is not RateSource.CONFIGURED
        ):
            changed = self.requests_source is not RateSource.STATED or (
                self.requests is not None and self.requests.per_minute != float(lr)
            )
            if self.requests is None:
                self.requests = Pacer(float(lr), tat=now)
            self.requests.per_minute, self.requests_source = float(lr), RateSource.STATED
            if changed:
                self.pace_reason = "the limit the provider states"
                notices.append(
                    f"pacing {self.name} at {lr:g} req/min: the limit the provider states"
                )
        if isinstance(lt, (int, float)) and lt > 0 and not self.tokens_configured:
            if self.tokens is None or self.tokens.per_minute != float(lt):
                notices.append(
                    f"pacing {self.name} at {lt:g} tokens/min: the limit the provider states"
                )
            if self.tokens is None:
                self.tokens = Pacer(float(lt), tat=now)
            self.tokens.per_minute = float(lt)
        if self.requests is not None:
            self.requests.observe(
                None, info.get("remaining_requests"), info.get("reset_requests"), now
            )
        if self.tokens is not None:
            self.tokens.observe(None, info.get("remaining_tokens"), info.get("reset_tokens"), now)
        unit, per, limit = info.get("limit_unit"), info.get("limit_per"), info.get("limit")
        if isinstance(limit, (int, float)) and limit > 0 and per == "min":
            stated = "limit_requests" if unit == "requests" else "limit_tokens"
            notices += self.learn({stated: limit}, now)
        elif isinstance(limit, (int, float)) and limit > 0 and per == "day" and unit == "requests":
            self.per_day = float(limit)
        return notices

    def answered(self, reserved: float, info: dict[str, Any], sent: float, now: float) -> list[str]:
        """A call came back with an answer: its usage corrects the token account, the slow-start
        window grows, a learned pace recovers (or a cut shown in vain is undone: notices)."""
        self.calls += 1
        used = info.get("tokens")
        if isinstance(used, (int, float)) and used > 0:
            if self.tokens is not None:
                self.tokens.adjust(used - reserved)
            self.tokens_per_call += (used - self.tokens_per_call) * 0.2
        output = info.get("output_tokens")
        if isinstance(output, (int, float)) and output > 0:
            self.output_per_call += (output - self.output_per_call) * 0.3
        self.window = min(WINDOW_MAX, self.window + 1)  # slow start: x2 per round
        change = self.adaptive.on_answer(sent, now)
        if change is not None and self.learning:
            return self._apply(change, now, slower=False)
        if self.requests_source is RateSource.LEARNED and self.requests is not None:
            self.requests.per_minute = self.adaptive.pace or self.requests.per_minute
        return []

    def rate_refused(
        self, info: dict[str, Any], tokens: float, sent: float, now: float
    ) -> tuple[Verdict, bool, list[str]]:
        """A rate refusal of a call sent at `sent`: judged a limit or noise (evidence.py) and
        acted on. Returns the verdict, whether the whole group should wait the refusal's reset
        (a limit it has not already slowed down for), and notices of changes of pace."""
        self.refusals[RefusalKind.RATE] = self.refusals.get(RefusalKind.RATE, 0) + 1
        adaptive = self.adaptive
        adaptive.on_refusal(sent, now)
        restored = adaptive.restore(now) if self.learning else None
        if restored is not None:  # the last cut was in vain: these refusals are noise
            self.noise_refusals += 1
            verdict = Verdict(Cause.NOISE, restored.why)
            return verdict, False, self._apply(restored, now, slower=False)
        around, refused_around = adaptive.outcomes.recent(now)
        if self.learning:
            calls, refused = adaptive.since_cut(now)
            # what to expect as noise: what a slower pace showed; right after a cut, the share
            # since when the refusals did not fall (none when they did); else a prior
            known = adaptive.noise_to_expect(now, refused / calls if calls else 0.0)
            noise = NOISE_PRIOR if known is None else known
            again = adaptive.refused_before(now)
            # the first cut waits for twice the evidence: a young group knows nothing yet
            needed = MIN_CALLS if adaptive.cut_yet else 2 * MIN_CALLS
        else:
            calls, refused = adaptive.outcomes.recent(now)
            noise, needed, again = 0.0, MIN_CALLS, False
        verdict = judge(
            info,
            calls=calls,
            refused=refused,
            noise=noise,
            tokens=tokens,
            refused_before=again,
            min_calls=needed,
            answers_around=around - refused_around,
        )
        if verdict.cause is Cause.NOISE:
            self.noise_refusals += 1
            return verdict, False, []
        self.window = max(1.0, self.window / 2)
        if not self.learning or calls < MIN_CALLS:
            # a configured or stated limit, or too few calls to learn a rate from: the group
            # waits for the reset and keeps its pace
            return verdict, True, []
        change = adaptive.on_limit(sent, now, verdict.why)
        if change is None:
            return verdict, False, []  # sent before the last cut, or at the floor already
        return verdict, True, self._apply(change, now, slower=True)

    def _apply(self, change: Change | None, now: float, *, slower: bool) -> list[str]:
        """A learned change of pace: the pacer follows, and the user is told once."""
        if change is None:
            return []
        if change.pace is None:
            self.requests, self.requests_source, self.pace_reason = None, RateSource.NONE, ""
            return [f"{self.name} no longer paced: {change.why}"]
        if self.requests is None:
            self.requests = Pacer(change.pace, tat=now)
        self.requests.per_minute, self.requests_source = change.pace, RateSource.LEARNED
        self.pace_reason = f"after {change.why}" if slower else change.why
        said = f"after {change.why}" if slower else f"again: {change.why}"
        return [f"pacing {self.name} at {change.pace:.0f} req/min {said}"]

    @property
    def learning(self) -> bool:
        """The requests pace is the adaptive rate's to set (nothing configured or stated)."""
        return self.requests_source in (RateSource.NONE, RateSource.LEARNED)

    # -- what it shows
    def pace_note(self) -> str:
        """`pacing org-a at 42 req/min after 3 refusals in 10 s` while a learned pace holds the
        group, else ""."""
        if self.requests_source is not RateSource.LEARNED or self.requests is None:
            return ""
        joint = " " if self.pace_reason.startswith("after ") else ": "
        return (
            f"pacing {self.name} at {self.requests.per_minute:.0f} req/min{joint}{self.pace_reason}"
        )

    def report(self) -> dict[str, Any]:
        """The group's part of a key's snapshot row."""
        return {
            "rpm_source": self.requests_source.value or None,
            "pace_reason": self.pace_reason,
            "noise_refusals": self.noise_refusals,
            "waited_s": round(self.waited, 3),
            "group_source": "named" if self.named else "provider" if self.from_provider else "key",
        }
