"""A request rate learned from refusals alone, for providers that state no limit anywhere.

With no configured limit, no `x-ratelimit-*` headers and no "Limit N" in the 429 body, the
refusals themselves are the only signal, and they are two signals mixed: a limit's, which stop
when the client slows down, and noise, which comes at any rate. What tells them apart is the
rate, so the rate keeps a record of it: each pace the group has run at is an *epoch*, and the
calls sent during it (`Outcomes.tally`) say how often that pace was refused and how fast it
turned into answers. evidence.py judges each refusal against what slower epochs showed
(`expected_noise`); this module moves the pace on the judgements that say "limit":

* **Decrease on evidence, once per round.** A refusal judged a limit cuts the pace to just
  under the rate the answers came back at since the refusals began (under a limit, that is the
  limit; the refusals noise explains are added back): by at least 1 - DECREASE of the rate the
  group was sending at, and by at most 1 - DEEPEST in one step unless most of its calls
  (MOSTLY) were refused. Refusals of calls sent before the last cut say nothing of the new pace.
* **Undo a cut that did not help.** A cut is on trial until EPOCH_CALLS calls sent at the new
  pace are known. When they were refused about as often as before it (at least FOLLOWED of the
  share) while their answers fell with the pace, the refusals ignored the rate: noise. Every cut
  of that run of cuts is undone, and the cut pace's share is what the group expects as noise
  from then on. A cut that helped confirms a limit: back at the rate its answers came at, a
  single refusal is a limit again.
* **The floor.** Never below FLOOR_SHARE of the rate the provider has been answering at since
  it began refusing (`proven`: the best answer rate it sustained over SUSTAINED seconds in the
  last minute): a limit below the rate it answered at is not what refused.
* **Recover quickly.** Every answer adds RECOVERY of the answer rate to the pace up to the
  rate the provider has proven to answer at (a cut by a fifth is undone in about twenty answers:
  two seconds at 600/min, where a fixed step of half a request per minute took minutes), PROBE
  of it above, where the limit is looked for again; never beyond PACE_OVER_SENT times what is
  actually sent.

Measured with a fake clock (tests/support/governor_drive.py, four workers, 0.3 s answers): random
refusals of 10 % never slow the group; at 30 % a cut is made and undone; a limit of 60/min stated
nowhere is kept to within a few per cent, with a refusal in five to ten calls while the pace
probes above it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from agentos.governor.evidence import MEMORY, SUSTAINED, WINDOW, Outcomes, Tally

DECREASE = 0.8
DEEPEST = 0.6
MOSTLY = 0.6  # a refusal share no noise explains: the cut may go as deep as the answers say
UNDER_ANSWERS = 0.95  # a cut goes this much under the rate the answers came back at
FLOOR_SHARE = 0.9
#: of the answer rate (per minute) added to the pace per answer
RECOVERY = 0.01
PROBE = 0.0025
MIN_STEP = 0.2  # requests/min per answer at the least
#: calls an epoch needs before its refusal share says anything
EPOCH_CALLS = 8
#: a pace that rose this much since its epoch began starts a new one
EPOCH_RISE = 1.1
#: refusals that stay above this share of what they were before a cut did not follow the rate
FOLLOWED = 0.5
PACE_OVER_SENT = 2.0
#: a cut to more than this share of the pace is not made: at the floor the pace stays, and its
#: epoch tells in time what to expect there
SMALLEST_CUT = 0.9
MIN_PACE = 1.0  # requests/min: never stop altogether
EPOCHS = 16


@dataclass(frozen=True)
class Change:
    """A decision that moved the pace: the new pace (None: not paced) and why, in words."""

    pace: float | None
    why: str


@dataclass(eq=False)
class _Epoch:
    """A stretch of calls sent at one pace."""

    start: float  # calls sent from then on, until the next epoch's start
    pace: float | None
    #: its refusals were judged a limit: not a measure of the noise to expect
    limited: bool = False


@dataclass
class AdaptiveRate:
    """A group's pace learned from its refusals (see the module docstring)."""

    pace: float | None = None  # requests/min; None: no evidence yet, nothing to pace by
    outcomes: Outcomes = field(default_factory=Outcomes)
    _epochs: deque[_Epoch] = field(default_factory=lambda: deque([_Epoch(float("-inf"), None)]))
    _last_cut: float = float("-inf")
    _first_refusal: float | None = None  # sent time of the group's first refused call
    _cut: _Epoch | None = None  # the epoch the last cut began, until it is judged
    _limit: float | None = None  # the pace of the last cut that helped

    # -- what the record says
    def _tally(self, index: int, now: float) -> Tally:
        epochs = list(self._epochs)
        end = epochs[index + 1].start if index + 1 < len(epochs) else float("inf")
        start = epochs[index].start
        if self._first_refusal is not None:
            start = max(start, self._first_refusal)
        return self.outcomes.tally(now, start, end)

    def sending_rate(self, now: float) -> float:
        """Calls per minute the group sends now: its pace, or what it sent when that is less."""
        sent = self.outcomes.sent_rate(now)
        if self.pace is None:
            return sent
        return min(sent, self.pace) if sent else self.pace

    def expected_noise(self, now: float) -> float | None:
        """The refusal share to expect at the current rate whatever the pace: the share the
        epochs at this rate or slower ones showed since the refusals began, pooled (a minimum
        of small samples would be too low); None when none has shown it yet. Epochs whose
        refusals were judged a limit do not count (their share is the limit's), nor a cut still
        on trial."""
        if self._first_refusal is None:
            return None
        rate = self.sending_rate(now)
        calls = refused = 0
        epochs = list(self._epochs)
        for index, epoch in enumerate(epochs):
            following = epochs[index + 1].start if index + 1 < len(epochs) else float("inf")
            if following <= self._first_refusal or epoch.limited or epoch is self._cut:
                continue  # over before the first refusal, refused by a limit, or on trial
            if index == len(epochs) - 1:
                continue  # the pace being judged
            tally = self._tally(index, now)
            if tally.calls >= EPOCH_CALLS and tally.rate <= rate * 1.05:
                calls, refused = calls + tally.calls, refused + tally.refused
        return refused / calls if calls else None

    def refused_before(self, now: float) -> bool:
        """A cut helped (a limit, confirmed) and the group sends again at the rate the answers
        came back at then, or faster: one refusal there is enough."""
        if self._limit is None:
            return False
        return self.sending_rate(now) >= self._limit / UNDER_ANSWERS

    def noise_to_expect(self, now: float, share: float) -> float | None:
        """The refusal share to take as noise now, given the `share` since the last cut: what
        a slower pace showed (`expected_noise`); else, after a cut, `share` itself when the
        refusals did not fall to under FOLLOWED of their share before the cut (they ignored
        it), and none when they did (the rate matters: what is left is the limit's); before
        any cut, None."""
        known = self.expected_noise(now)
        tallies = self._cut_tallies(now)
        if known is not None or tallies is None:
            return known
        before, _ = tallies
        if before.calls and share >= FOLLOWED * before.share:
            return share
        return 0.0

    def proven(self, now: float) -> float:
        """The best answer rate (per minute) the provider sustained since it began refusing,
        over SUSTAINED seconds in the last MEMORY seconds: a rate it has shown it answers at.
        A burst a provider's window lets through, spread over SUSTAINED seconds, counts for
        little."""
        if self._first_refusal is None:
            return 0.0
        answers = [
            t for t in self.outcomes.answers_sent_since(self._first_refusal) if t >= now - MEMORY
        ]
        if not answers:
            return 0.0
        span = SUSTAINED  # a younger group's answers count over the whole span: never too many
        best = low = 0
        for high, t in enumerate(answers):
            while answers[low] < t - span:
                low += 1
            best = max(best, high - low + 1)
        return best * 60.0 / span

    def floor(self, now: float) -> float:
        return max(MIN_PACE, FLOOR_SHARE * self.proven(now))

    def since_cut(self, now: float) -> tuple[int, int]:
        """(calls, refusals) sent in the last WINDOW seconds, since the last cut (and the first
        refusal), whose outcome is known."""
        start = max(self._last_cut, self._first_refusal or self._last_cut, now - WINDOW)
        tally = self.outcomes.tally(now, start)
        return tally.calls, tally.refused

    @property
    def cut_yet(self) -> bool:
        return self._last_cut > float("-inf")

    def _cut_tallies(self, now: float) -> tuple[Tally, Tally] | None:
        """(the calls before the last cut, the calls after it) while the cut is on trial."""
        if self._cut is None or self._cut not in self._epochs:
            return None
        index = list(self._epochs).index(self._cut)
        if index == 0:
            return None
        return self._tally(index - 1, now), self._tally(index, now)

    @property
    def on_trial(self) -> bool:
        """A cut's calls have not told yet whether it helped."""
        return self._cut is not None

    def cut_in_vain(self, now: float) -> tuple[float, float | None] | None:
        """After a cut, once EPOCH_CALLS calls at the new pace are known: did the refusals
        ignore it? (the share since, the pace before the cut) when those calls were refused
        about as often as before it (at least FOLLOWED of the share) while their answers fell
        with the pace: noise's signature (a limit's refusals fall, or its answers hold at the
        limit). None otherwise; a cut that helped is no longer on trial."""
        tallies = self._cut_tallies(now)
        if tallies is None or self._cut is None:
            return None
        before, after = tallies
        if after.calls < EPOCH_CALLS:
            return None
        slower = min(1.0, after.rate / before.rate) if before.rate else 1.0
        answers_fell = after.answer_rate < before.answer_rate * (1 - (1 - slower) / 2)
        if after.refused and after.share >= FOLLOWED * before.share and answers_fell:
            index = list(self._epochs).index(self._cut)
            return after.share, self._epochs[index - 1].pace
        self._limit, self._cut = self._cut.pace, None  # it helped: the limit's
        return None

    # -- outcomes
    def on_answer(self, sent: float, now: float) -> Change | None:
        """An answer: a cut on trial may be judged (undone when in vain), a pace recovers.
        Returns the change a judged cut made."""
        self.outcomes.add(sent, now, refused=False)
        if self.on_trial:
            return self.restore(now)  # its pace holds until its calls have told
        if self.pace is None:
            return None
        # quickly back up to the rate the provider has answered at (refusals the noise explains
        # added back), slowly above it, where a limit may be
        known = self.expected_noise(now) or 0.0
        proven = self.proven(now) / max(0.5, 1.0 - known)
        rate = RECOVERY if self.pace < proven else PROBE
        step = max(MIN_STEP, rate * self.outcomes.answer_rate(now))
        cap = max(self.pace, PACE_OVER_SENT * self.outcomes.sent_rate(now))
        self.pace = min(self.pace + step, cap)
        current = self._epochs[-1]
        if current.pace is not None and self.pace >= current.pace * EPOCH_RISE:
            self._new_epoch(now)
        return None

    def on_refusal(self, sent: float, now: float) -> None:
        """Record a refusal (before it is judged)."""
        self.outcomes.add(sent, now, refused=True)
        if self._first_refusal is None:
            self._first_refusal = sent

    def restore(self, now: float) -> Change | None:
        """Undo the last cut when its calls show it was in vain (see `cut_in_vain`)."""
        found = self.cut_in_vain(now)
        if found is None:
            return None
        share, _ = found
        # the cuts since the refusals began looked alike: undo them all, back to the pace
        # before the first one that is still remembered
        index = list(self._epochs).index(self._cut)  # type: ignore[arg-type]
        before = self._pace_before_cuts(index)
        for epoch in list(self._epochs)[:index]:
            epoch.limited = False  # their refusals were noise after all
        self.pace, self._last_cut, self._cut, self._limit = before, now, None, None
        self._new_epoch(now)
        return Change(
            before,
            f"its refusals went on at the lower rate ({share:.0%} of calls): "
            "the provider's noise, not a limit",
        )

    def on_limit(self, sent: float, now: float, why: str) -> Change | None:
        """A refusal judged a limit. Returns the cut, or None when the call was sent before the
        last cut (that cut answered it) or the pace is at its floor already."""
        if sent < self._last_cut:
            return None
        self._epoch_of(sent).limited = True
        sending = self.sending_rate(now)
        target = DECREASE * sending
        start = max(self._last_cut, self._first_refusal or self._last_cut)
        since = self.outcomes.tally(now, start)
        if since.calls >= EPOCH_CALLS and since.answer_rate:
            # a little under the rate the answers came back at (the refusals noise explains
            # added back): under a limit, just under the limit
            noise = self.expected_noise(now) or 0.0
            answered = UNDER_ANSWERS * since.answer_rate / max(0.5, 1.0 - noise)
            target = min(target, answered)
            if since.share < MOSTLY:  # a few calls may be refused by chance: not too deep
                target = max(DEEPEST * sending, target)
        target = max(self.floor(now), target)
        if target >= (self.pace if self.pace is not None else sending) * SMALLEST_CUT:
            return None  # at the floor: the provider answered faster than this
        self.pace, self._last_cut = target, now
        self._cut = self._new_epoch(now)
        return Change(target, why)

    def _pace_before_cuts(self, index: int) -> float | None:
        """The pace before the run of cuts that ends with the epoch at `index` began: back
        through the epochs while each was slower than the one before it."""
        epochs = list(self._epochs)
        while index > 0:
            slower, earlier = epochs[index].pace, epochs[index - 1].pace
            if slower is None or earlier is None or slower >= earlier:
                break
            index -= 1
        return epochs[index - 1].pace if index > 0 else None

    def _epoch_of(self, sent: float) -> _Epoch:
        for epoch in reversed(self._epochs):
            if epoch.start <= sent:
                return epoch
        return self._epochs[0]

    def _new_epoch(self, now: float) -> _Epoch:
        epoch = _Epoch(now, self.pace)
        self._epochs.append(epoch)
        while len(self._epochs) > EPOCHS:
            self._epochs.popleft()
        return epoch


__all__ = ["AdaptiveRate", "Change"]
