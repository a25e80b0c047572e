"""Per-call grants (HTTP agents): a key for one model call, paced, in one round trip.

`grant` picks the key whose group can start the call soonest, reserves the call's request and
estimated tokens in that group's pacers, and hands back the key with the delay after which the
call may start. `end` takes how the call went: an answer's real usage and limit headers teach
the group; a refusal is one of the four "no"s. A *rate* refusal is judged by the group
(evidence.py): a limit makes the whole group wait for the stated reset (and, for a learned
pace, slows it); noise — a lone refusal among answers — holds only the refused item for its
retry-after and sends other calls to other keys while that lasts (at most NOISE_KEY_HOLD), and
keeps the pace. *quota* parks the group, *overloaded* backs everybody off, *rejected* retires
the key (outages.py). Every wait a call is told to make carries its reason, for the journal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agentos.governor.clocks import Clocks
from agentos.governor.evidence import Cause
from agentos.governor.keys import Cooldown, Key, KeyRing
from agentos.governor.notices import Notices
from agentos.governor.outages import OVERLOAD_BASE, Outages
from agentos.item.keys import CallGrant, KeyOutcome
from agentos.item.refusal_kinds import RefusalKind

#: after a refusal judged noise, other calls go to other keys for this long at most (its own
#: call waits the whole retry-after); a key with no other beside it keeps its pace: holding it
#: would stall the group and send the held calls at once when the hold ends
NOISE_KEY_HOLD = 1.0


@dataclass
class _CallRecord:
    """A call granted and not yet reported."""

    key: Key
    item_id: str
    tokens: float
    started: float


class Calls:
    """The calls granted and not yet reported, and the items held back by a refused call's
    retry-after. `ids` is shared with the leases."""

    def __init__(
        self,
        ring: KeyRing,
        outages: Outages,
        clocks: Clocks,
        ids: Iterator[int],
        notices: Notices,
        cooldown: Cooldown,
    ) -> None:
        self._ring = ring
        self._outages = outages
        self._clocks = clocks
        self._ids = ids
        self._notices = notices
        self._cooldown = cooldown
        self._records: dict[int, _CallRecord] = {}
        #: item id -> (monotonic time, reason) before which its next call may not start: the
        #: retry-after of its refused call
        self._holds: dict[str, tuple[float, str]] = {}

    def grant(self, item_id: str, tokens: float | None, pinned: str | None) -> CallGrant | None:
        """A grant, a no-key answer, or None when only the windows stand in the way."""
        now = self._clocks.monotonic()
        held_until, held_why = self._holds.get(item_id, (0.0, ""))
        if held_until > now:
            # its refused call's retry-after: ask again then, and take a slot of the pace then
            return CallGrant(0, "", "", held_until - now, held_why)
        self._holds.pop(item_id, None)
        best: tuple[tuple[float, int, float], float, Key] | None = None
        windowed = False
        for key in self._ring:
            if pinned is not None and key.label != pinned:
                continue
            if not self._outages.usable(key):
                continue
            if key.group.window_full():
                windowed = True
                continue
            start = self._start_time(key, key.group.estimate(tokens), now)
            # soonest start first (a key refused as noise a moment ago counts as later); then the
            # key with the fewest calls out (what a key whose limits are unknown can take is
            # unknown: spread), then the least recently used
            rank = (start + max(0.0, key.avoid_until - now), key.in_flight, key.last_used)
            if best is None or rank < best[0]:
                best = (rank, start, key)
        if best is None:
            if windowed:
                return None
            candidates = [k for k in self._ring if pinned is None or k.label == pinned]
            wait, reason = self._outages.why_none(candidates)
            return CallGrant(0, "", "", wait, reason)
        _, start, key = best
        group = key.group
        estimate = group.estimate(tokens)
        start = max(start, group.reserve(estimate, now))
        call_id = next(self._ids)
        self._records[call_id] = _CallRecord(key, item_id, estimate, start)
        key.last_used = start
        key.calls += 1
        key.in_flight += 1
        group.in_flight += 1
        group.used_today += 1
        delay = max(0.0, start - now)
        reason = ""
        if delay > 0.05:
            reason = self._wait_reason(key, now)
        group.waited += delay
        return CallGrant(call_id, key.credential.secret, key.label, delay, reason)

    def end(
        self, call_id: int, outcome: KeyOutcome | RefusalKind, info: dict[str, Any]
    ) -> str | None:
        """How a call ended (see Governor.end_call); None when it was not in flight, else what
        a refusal changed ("" for nothing to say)."""
        record = self._records.pop(call_id, None)
        if record is None:
            return None
        key, now = record.key, self._clocks.monotonic()
        self._landed(key)
        organization = info.get("organization")
        if isinstance(organization, str) and organization:
            self._ring.join_organization(key, organization)
        group = key.group
        self._notices.extend(group.learn(info, now))
        notice = ""
        if outcome == KeyOutcome.OK:
            self._notices.extend(group.answered(record.tokens, info, record.started, now))
            key.strikes = 0
            self._outages.answered()
        elif outcome in tuple(RefusalKind):
            kind = RefusalKind(outcome)
            if kind != RefusalKind.RATE:  # a rate refusal is counted by the group's judgement
                group.refusals[kind] = group.refusals.get(kind, 0) + 1
            group.used_today = max(0, group.used_today - 1)
            notice = self._refused(record, kind, info, now)
        return notice

    def confirm(self, call_id: int) -> bool | None:
        """After a granted call's delay: may it still go? None when the call is unknown, False
        when its key was parked or retired meanwhile (the grant is dropped, uncounted)."""
        record = self._records.get(call_id)
        if record is None:
            return None
        if self._outages.usable(record.key):
            return True
        del self._records[call_id]
        record.key.calls -= 1  # it never went
        self._landed(record.key)
        record.key.group.used_today = max(0, record.key.group.used_today - 1)
        return False

    def drop(self, item_ids: list[str]) -> None:
        """Forget these items' holds and calls in flight (the items are gone)."""
        for item_id in item_ids:
            self._holds.pop(item_id, None)
        for call_id, call in list(self._records.items()):
            if call.item_id in item_ids:
                self._landed(call.key)
                del self._records[call_id]

    @staticmethod
    def _landed(key: Key) -> None:
        key.in_flight -= 1
        key.group.in_flight -= 1

    def _start_time(self, key: Key, tokens: float, now: float) -> float:
        start = max(now, key.cooling_until, self._outages.overload_until)
        return max(start, key.group.start_time(tokens, now))

    def _wait_reason(self, key: Key, now: float) -> str:
        group = key.group
        if self._outages.overload_until > now:
            return "provider overloaded: everyone backs off"
        if key.cooling_until > now:
            return f"{key.label} cooling after a rate limit"
        if group.held_until > now:
            return group.hold_reason
        parts = []
        if group.requests is not None:
            parts.append(f"{group.requests.per_minute:.0f} requests/min")
        if group.tokens is not None:
            parts.append(f"{group.tokens.per_minute:.0f} tokens/min")
        return f"pacing group {group.name} at {' and '.join(parts)}"

    def _refused(
        self, record: _CallRecord, outcome: RefusalKind, info: dict[str, Any], now: float
    ) -> str:
        key = record.key
        group = key.group
        wait = info.get("wait")
        wait = float(wait) if isinstance(wait, (int, float)) else None
        if outcome == RefusalKind.REJECTED:
            if key.revoked:
                return ""
            key.revoked = True
            detail = info.get("detail")
            said = f" ({detail})" if detail else ""
            notice = f"{key.label} rejected by the provider{said}; not used again this run"
            self._notices.add(notice)
            return notice
        if outcome == RefusalKind.OVERLOADED:
            self._outages.overloaded(wait)
            return ""
        if outcome == RefusalKind.QUOTA:
            return self._outages.park_for(key, wait)
        verdict, slow_down, notices = group.rate_refused(info, record.tokens, record.started, now)
        self._notices.extend(notices)
        if wait is None:
            key.strikes += 1
            wait = min(OVERLOAD_BASE * 2 ** (key.strikes - 1), self._cooldown.most)
        if verdict.cause is Cause.LIMIT and (slow_down or not group.learning):
            # a limit: the whole group waits for the reset
            if group.paced:
                group.hold(
                    wait,
                    now,
                    f"group {group.name} was rate limited ({verdict.why}); waiting for its reset",
                )
            else:
                key.cooling_until = max(key.cooling_until, now + wait)
            return ""
        # noise, or a limit the group already slowed down for: the refused call waits its
        # retry-after, its key a moment, and the pace stays
        why = (
            f"retry-after of a refused call ({verdict.why}: the pace is kept)"
            if verdict.cause is Cause.NOISE
            else f"retry-after of a refused call (group {group.name} already slowed down)"
        )
        held = self._holds.get(record.item_id, (0.0, ""))[0]
        self._holds[record.item_id] = (max(held, now + wait), why)
        group.waited += max(0.0, now + wait - max(held, now))
        key.avoid_until = max(key.avoid_until, now + min(wait, NOISE_KEY_HOLD))
        return ""
