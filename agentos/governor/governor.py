"""The governor: which key a call or an item may use, and when.

Providers limit an *organisation* (Gemini: a project), not a key, so keys are put in groups (one
per key unless the credentials file says `group=`), and each group (group.py) owns the budgets
and what it learns about them:

    KeyGroup ── requests Pacer (RPM: configured, else stated by headers or the 429's "Limit N",
       │                        else an AdaptiveRate learned from refusals judged to be a limit)
       ├──── tokens Pacer   (TPM: configured or stated)
       ├──── requests per day (RPD: configured; a provider's quota refusal parks the group)
       └──── keys: slots for items (`slots=`, default 1), parked / retired flags

Two ways to use a key:

* **Per call** (HTTP agents): `acquire_call(item, tokens)` picks the group that can start the
  call soonest, reserves the call's request and estimated tokens there, and returns the key with
  the delay after which the call may start: one round trip, paced, fair. `end_call` reports the
  answer: real token usage, the limit headers, or the kind of "no" (agentos.item.refusals). A
  refused call is asked for again by the agent; the item keeps its finished calls and spends no
  retry.
* **Per item** (CLI agents, `agentos run`): a subprocess reads its key once, from its
  environment, so it holds a lease for the attempt: `acquire(item)` / `claim` / `release`, with
  `slots` items per key and no lease on a key whose group is out
  of budget for the day, parked or cooling.

The four "no"s: *rate* is judged first (evidence.py): a limit pushes the group's schedule out to
the stated reset (every call of that group waits, not only the refused one) and, for a learned
pace, slows the group; noise — a lone refusal among answers — holds only the refused call for
its retry-after, sends other calls to other keys while that lasts (at most NOISE_KEY_HOLD), and
keeps the pace. *quota* parks the
group until the stated reset, or for the run; *overloaded* backs everybody off briefly
(exponential, reset by a success); *rejected* retires the key. Every wait a call is told to make
carries its reason, for the journal; every change of a group's pace is a notice (`events`).

Thread-safe: the key server (a Manager) serves each client connection from its own thread.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentos.governor.credentials import (
    BASE_COOLDOWN,
    MAX_COOLDOWN,
    Credential,
    KeyConfig,
    Lease,
    make_credentials,
)
from agentos.governor.evidence import Cause
from agentos.governor.group import KeyGroup
from agentos.governor.protocol import KeyState
from agentos.item.keys import CallGrant, KeyOutcome
from agentos.item.process_tree import pid_alive
from agentos.item.refusals import RefusalKind

#: a first overload costs a quarter second; consecutive ones double it (not the key's fault, and
#: one 529 among hundreds of answers is the provider's noise, not a reason to stop for long)
OVERLOAD_BASE = 0.25
OVERLOAD_MAX = 60.0
FOREVER = math.inf
WINDOW_WAIT = 2.0  # seconds a call waits in the governor for a window before asking again
#: after a refusal judged noise, other calls go to other keys for this long at most (its own
#: call waits the whole retry-after); a key with no other beside it keeps its pace: holding it
#: would stall the group and send the held calls at once when the hold ends
NOISE_KEY_HOLD = 1.0


@dataclass
class KeyStatus:
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


@dataclass
class _Key:
    credential: Credential
    group: KeyGroup
    slots: int = 1
    leases: set[int] = field(default_factory=set)
    cooling_until: float = 0.0  # monotonic
    strikes: int = 0
    revoked: bool = False
    last_used: float = 0.0
    lease_count: int = 0
    calls: int = 0
    in_flight: int = 0  # calls granted and not yet reported
    avoid_until: float = 0.0  # monotonic: refused as noise; other keys first until then

    @property
    def label(self) -> str:
        return self.credential.label


@dataclass
class _LeaseRecord:
    key: _Key
    item_id: str
    holder_pid: int = 0


@dataclass
class _CallRecord:
    key: _Key
    item_id: str
    tokens: float
    started: float


class Governor:
    """Keys, their groups and budgets. Constructed with the keys (plain strings or `KeyConfig`s
    carrying per-key attributes); `parked` maps key fingerprints to (until, reason) remembered
    from earlier runs."""

    def __init__(
        self,
        keys: Iterable[str | KeyConfig] = (),
        base_cooldown: float = BASE_COOLDOWN,
        max_cooldown: float = MAX_COOLDOWN,
        seed: int | None = None,
        parked: dict[str, tuple[float, str]] | None = None,
        clock: Any = time.monotonic,
        wall: Any = time.time,
    ) -> None:
        self._cond = threading.Condition()
        self._base = base_cooldown
        self._max = max_cooldown
        self._random = random.Random(seed)
        self._clock = clock
        self._wall = wall
        self._keys: list[_Key] = []
        self._groups: dict[str, KeyGroup] = {}
        self._configs: list[KeyConfig] = []
        self._leases: dict[int, _LeaseRecord] = {}
        self._calls: dict[int, _CallRecord] = {}
        self._next_id = 1
        self._overload_until = 0.0
        self._overload_strikes = 0
        self._events: list[str] = []
        #: item id -> (monotonic time, reason) before which its next call may not start: the
        #: retry-after of its refused call
        self._holds: dict[str, tuple[float, str]] = {}
        self._remembered = dict(parked or {})
        self.add_keys(list(keys))

    # -- keys
    def add_keys(self, keys: list[str | KeyConfig]) -> list[str]:
        """Add keys (the Dask backend hands them to its actor this way, in a direct call rather
        than in task arguments). Returns all labels."""
        with self._cond:
            configs = [k if isinstance(k, KeyConfig) else KeyConfig(k) for k in keys]
            known = {c.secret for c in self._configs}
            self._configs += [c for c in configs if c.secret and c.secret not in known]
            self._configs = list({c.secret: c for c in self._configs}.values())
            credentials = make_credentials(c.secret for c in self._configs)
            have = {k.credential.secret for k in self._keys}
            by_secret = {c.secret: c for c in self._configs}
            for credential in credentials:
                if credential.secret in have:
                    continue
                config = by_secret[credential.secret]
                group = self._group(config.group or credential.label, config)
                group.named = group.named or config.group is not None
                key = _Key(credential, group, slots=max(1, config.slots))
                self._keys.append(key)
                remembered = self._remembered.get(credential.full_fingerprint)
                if remembered and remembered[0] > self._wall():
                    self._park(group, remembered[0], remembered[1], announce=False)
            self._cond.notify_all()
            return [k.label for k in self._keys]

    def _group(self, name: str, config: KeyConfig) -> KeyGroup:
        group = self._groups.get(name)
        if group is None:
            group = self._groups[name] = KeyGroup(name)
        group.configure(config)
        return group

    # -- per-item leases (CLI agents, agentos run)
    def acquire(self, item_id: str, timeout: float = 0.0, holder_pid: int = 0) -> Lease | None:
        """A lease on a key with a free slot, waiting up to `timeout` seconds; None when none
        came free (every key full, cooling, parked or retired)."""
        deadline = self._clock() + max(0.0, timeout)
        with self._cond:
            while True:
                key = self._pick_for_item()
                if key is None and self._reclaim_dead_holders():
                    key = self._pick_for_item()
                if key is not None:
                    lease_id = self._new_id()
                    key.leases.add(lease_id)
                    key.last_used = self._clock()
                    key.lease_count += 1
                    self._leases[lease_id] = _LeaseRecord(key, item_id, holder_pid)
                    return Lease(lease_id, key.label, item_id)
                left = deadline - self._clock()
                if left <= 0 or all(k.revoked for k in self._keys):
                    return None
                wake = self._next_change()
                self._cond.wait(left if wake is None else min(left, max(0.01, wake)))

    def lease_label(self, label: str, item_id: str) -> Lease | None:
        """Mark `label` leased to `item_id` now, whatever its state: how a governor started
        afresh learns which keys running items already hold (Dask actor restart)."""
        with self._cond:
            for key in self._keys:
                if key.label == label:
                    lease_id = self._new_id()
                    key.leases.add(lease_id)
                    self._leases[lease_id] = _LeaseRecord(key, item_id)
                    return Lease(lease_id, label, item_id)
            return None

    def claim(self, lease_id: int, holder_pid: int) -> tuple[str, str]:
        """The key behind a lease, for the process that will use it."""
        with self._cond:
            record = self._leases.get(lease_id)
            if record is None:
                raise KeyError(f"lease {lease_id} is not active (reclaimed or released)")
            record.holder_pid = holder_pid
            return record.key.credential.secret, record.key.label

    def release(
        self,
        lease_id: int,
        outcome: KeyOutcome = KeyOutcome.OK,
        retry_after: float | None = None,
        kind: str = "",
    ) -> float:
        """End a lease. `kind` refines a rate-limited outcome (a RefusalKind: rate, quota,
        overloaded). Returns the cooldown applied to the key (0 unless rate limited)."""
        with self._cond:
            record = self._leases.pop(lease_id, None)
            if record is None:
                return 0.0
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
                until = self._wall() + retry_after if retry_after is not None else FOREVER
                self._park(key.group, until, f"{key.label}: out of quota")
            elif outcome == KeyOutcome.RATE_LIMITED and kind == RefusalKind.OVERLOADED:
                self._overloaded(retry_after)
            elif outcome == KeyOutcome.RATE_LIMITED:
                key.strikes += 1
                cooldown = self._cooldown(key.strikes, retry_after)
                key.cooling_until = self._clock() + cooldown
            elif outcome == KeyOutcome.REVOKED:
                key.revoked = True
            elif outcome == KeyOutcome.OK:
                key.strikes = 0
                self._overload_strikes = 0
            self._cond.notify_all()
            return cooldown

    def reclaim(
        self, item_ids: list[str] | None = None, holder_pid: int | None = None
    ) -> list[str]:
        """Release the leases (and calls) of these items / this holder. Returns the labels."""
        with self._cond:
            freed = []
            for lease_id, record in list(self._leases.items()):
                if (item_ids is not None and record.item_id in item_ids) or (
                    holder_pid is not None and record.holder_pid == holder_pid
                ):
                    freed.append(record.key.label)
                    record.key.leases.discard(lease_id)
                    del self._leases[lease_id]
            if item_ids is not None:
                for item_id in item_ids:
                    self._holds.pop(item_id, None)
                for call_id, call in list(self._calls.items()):
                    if call.item_id in item_ids:
                        call.key.in_flight -= 1
                        call.key.group.in_flight -= 1
                        del self._calls[call_id]
            if freed:
                self._cond.notify_all()
            return freed

    # -- per-call grants (HTTP agents)
    def acquire_call(
        self,
        item_id: str,
        tokens: float | None = None,
        pinned: str | None = None,
        wait: float = WINDOW_WAIT,
    ) -> CallGrant:
        """A key for one call of `item_id` whose prompt is estimated at `tokens` (the governor
        adds the answer's size it learned from the group's answers; None: the group's mean
        call), on the group that can start it soonest, or only on key `pinned` (an item that
        holds a lease). Reserves the call in that group's budgets. Waits up to `wait` seconds
        for a call in flight to end when every group whose limits are unknown is at its
        window."""
        deadline = self._clock() + wait
        with self._cond:
            while True:
                grant = self._grant(item_id, tokens, pinned)
                if grant is not None:
                    return grant
                left = deadline - self._clock()
                if left <= 0:
                    return CallGrant(0, "", "", 0.0, "waiting for calls in flight")
                self._cond.wait(left)

    def _grant(self, item_id: str, tokens: float | None, pinned: str | None) -> CallGrant | None:
        """A grant, a no-key answer, or None when only the windows stand in the way."""
        now = self._clock()
        held_until, held_why = self._holds.get(item_id, (0.0, ""))
        if held_until > now:
            # its refused call's retry-after: ask again then, and take a slot of the pace then
            return CallGrant(0, "", "", held_until - now, held_why)
        self._holds.pop(item_id, None)
        best: tuple[tuple[float, int, float], float, _Key] | None = None
        windowed = False
        for key in self._keys:
            if pinned is not None and key.label != pinned:
                continue
            if not self._usable(key):
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
            wait, reason = self._why_none(pinned)
            return CallGrant(0, "", "", wait, reason)
        _, start, key = best
        group = key.group
        estimate = group.estimate(tokens)
        start = max(start, group.reserve(estimate, now))
        call_id = self._new_id()
        self._calls[call_id] = _CallRecord(key, item_id, estimate, start)
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

    def end_call(
        self, call_id: int, outcome: KeyOutcome | RefusalKind, info: dict[str, Any] | None = None
    ) -> str:
        """Report how a call ended: ok (with `tokens` used and the limit headers' figures) or a
        refusal kind (with `wait`, `limit_unit`/`limit_per`/`limit`, `detail`). Returns what the
        refusal changed (a key parked or retired), also queued for the user (`events`), else
        ""."""
        info = info or {}
        with self._cond:
            record = self._calls.pop(call_id, None)
            if record is None:
                return ""
            key, now = record.key, self._clock()
            key.in_flight -= 1
            key.group.in_flight -= 1
            organization = info.get("organization")
            if isinstance(organization, str) and organization:
                self._join_organization(key, organization)
            group = key.group
            self._events += group.learn(info, now)
            notice = ""
            if outcome == KeyOutcome.OK:
                self._events += group.answered(record.tokens, info, record.started, now)
                key.strikes = 0
                self._overload_strikes = 0
            elif outcome in tuple(RefusalKind):
                kind = RefusalKind(outcome)
                if kind != RefusalKind.RATE:  # a rate refusal is counted by the group's judgement
                    group.refusals[kind] = group.refusals.get(kind, 0) + 1
                group.used_today = max(0, group.used_today - 1)
                notice = self._refused(record, kind, info, now)
            self._cond.notify_all()
            return notice

    def confirm_call(self, call_id: int) -> bool:
        """After a granted call's delay: may it still go? Not when its key was parked or retired
        meanwhile (a quota refusal of another call); the grant is then dropped, uncounted, and
        the caller asks again."""
        with self._cond:
            record = self._calls.get(call_id)
            if record is None:
                return False
            if self._usable(record.key):
                return True
            del self._calls[call_id]
            record.key.calls -= 1  # it never went
            record.key.in_flight -= 1
            record.key.group.in_flight -= 1
            record.key.group.used_today = max(0, record.key.group.used_today - 1)
            self._cond.notify_all()
            return False

    # -- inspection
    def status(self) -> KeyStatus:
        with self._cond:
            now = self._clock()
            leased = sum(1 for k in self._keys if k.leases and not k.revoked)
            revoked = sum(1 for k in self._keys if k.revoked)
            parked = sum(1 for k in self._keys if not k.revoked and self._parked(k.group))
            cooling = sum(
                1
                for k in self._keys
                if not k.leases
                and not k.revoked
                and not self._parked(k.group)
                and k.cooling_until > now
            )
            wake = self._next_cooldown_end()
            all_out_for = back_at = None
            if self._keys and not any(self._usable(k) for k in self._keys):
                all_out_for, _ = self._why_none(None)
                parks = [k.group.parked_until for k in self._keys if not k.revoked]
                back_at = min(parks) if parks else None
            return KeyStatus(
                total=len(self._keys),
                free=len(self._keys) - leased - revoked - cooling - parked,
                leased=leased,
                cooling=cooling,
                revoked=revoked,
                next_free_in=None if wake is None else max(0.0, wake),
                parked=parked,
                all_out_for=all_out_for,
                back_at=back_at,
                pacing=tuple(n for g in self._groups.values() if (n := g.pace_note())),
            )

    def snapshot(self) -> list[dict[str, object]]:
        """Every key: label, fingerprint, group, state, leases, calls, the group's limits and
        refusals, parked-until (epoch, or "run"). What the summary and `agentos keys` show."""
        with self._cond:
            now = self._clock()
            rows: list[dict[str, object]] = []
            for k in self._keys:
                g = k.group
                state = (
                    KeyState.REVOKED
                    if k.revoked
                    else KeyState.PARKED
                    if self._parked(g)
                    else KeyState.LEASED
                    if k.leases
                    else KeyState.COOLING
                    if k.cooling_until > now
                    else KeyState.FREE
                )
                rows.append(
                    {
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
                        "parked_until": _parked_value(g.parked_until) if self._parked(g) else None,
                        "park_reason": g.park_reason if self._parked(g) else "",
                        **g.report(),
                    }
                )
            return rows

    def parked_keys(self) -> dict[str, tuple[float, str]]:
        """Full fingerprint -> (until, reason) of every parked key, to remember across runs
        (keys parked for the run only are remembered for a day: a quota with no stated reset)."""
        with self._cond:
            wall = self._wall()
            found = {}
            for k in self._keys:
                if self._parked(k.group):
                    until = k.group.parked_until
                    found[k.credential.full_fingerprint] = (
                        until if until != FOREVER else wall + 86400.0,
                        k.group.park_reason,
                    )
            return found

    def events(self) -> list[str]:
        """Notices since the last call (a key parked, the provider overloaded), for the user."""
        with self._cond:
            found, self._events = self._events, []
            return found

    def labels(self) -> list[str]:
        return [k.label for k in self._keys]

    def ping(self) -> bool:
        return True

    # -- internals (hold the lock)
    def _new_id(self) -> int:
        found = self._next_id
        self._next_id += 1
        return found

    def _join_organization(self, key: _Key, organization: str) -> None:
        """The provider says which organisation the key spends: keys of one organisation share
        one budget, so they go into one group (unless the user named the key's group). The
        first key of an organisation brings its group's learned state along; the calls a later
        one has out were reserved in its old group, and end there."""
        if key.group.named or key.group.name == organization:
            return
        old = key.group
        target = self._groups.get(organization)
        if target is None:
            self._groups.pop(old.name, None)
            old.name, old.from_provider = organization, True
            self._groups[organization] = old
            return
        key.group = target
        old.in_flight -= key.in_flight  # its calls out end in the group it is in now
        target.in_flight += key.in_flight
        if not any(k.group is old for k in self._keys):
            self._groups.pop(old.name, None)

    def _parked(self, group: KeyGroup) -> bool:
        return group.parked_until > self._wall()

    def _out_for_today(self, group: KeyGroup) -> bool:
        if group.per_day is None:
            return False
        today = int(self._wall() // 86400)
        if today != group.today:  # a run past midnight UTC starts the new day's count
            group.today, group.used_today = today, 0
        return group.used_today >= group.per_day

    def _usable(self, key: _Key) -> bool:
        group = key.group
        return not key.revoked and not self._parked(group) and not self._out_for_today(group)

    def _pick_for_item(self) -> _Key | None:
        now = self._clock()
        free = [
            k
            for k in self._keys
            if len(k.leases) < k.slots
            and self._usable(k)
            and k.cooling_until <= now
            and self._overload_until <= now
        ]
        # least loaded first, then least recently used: spreads items over keys and groups
        return min(free, key=lambda k: (len(k.leases) / k.slots, k.last_used)) if free else None

    def _start_time(self, key: _Key, tokens: float, now: float) -> float:
        start = max(now, key.cooling_until, self._overload_until)
        return max(start, key.group.start_time(tokens, now))

    def _wait_reason(self, key: _Key, now: float) -> str:
        group = key.group
        if self._overload_until > now:
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

    def _why_none(self, pinned: str | None) -> tuple[float, str]:
        """Seconds until some key could serve (inf: none this run), and why none can now."""
        wall = self._wall()
        keys = [k for k in self._keys if pinned is None or k.label == pinned]
        if not keys or all(k.revoked for k in keys):
            return FOREVER, "every key was rejected by the provider"
        backs = []
        for k in keys:
            if k.revoked:
                continue
            if self._parked(k.group):
                backs.append(k.group.parked_until - wall)
            elif self._out_for_today(k.group):
                backs.append(self._until_midnight(wall))
        soonest = min(backs) if backs else 1.0
        return max(0.05, soonest), "every key is out of quota"

    @staticmethod
    def _until_midnight(wall: float) -> float:
        return 86400.0 - wall % 86400.0

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
            self._events.append(notice)
            return notice
        if outcome == RefusalKind.OVERLOADED:
            self._overloaded(wait)
            return ""
        if outcome == RefusalKind.QUOTA:
            until = self._wall() + wait if wait is not None else FOREVER
            return self._park(group, until, f"{key.label}: out of quota")
        verdict, slow_down, notices = group.rate_refused(info, record.tokens, record.started, now)
        self._events += notices
        if wait is None:
            key.strikes += 1
            wait = min(OVERLOAD_BASE * 2 ** (key.strikes - 1), self._max)
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

    def _park(self, group: KeyGroup, until: float, reason: str, *, announce: bool = True) -> str:
        if until <= group.parked_until:
            return ""
        group.parked_until, group.park_reason = until, reason
        when = (
            "for the rest of the run"
            if until == FOREVER
            else "until " + time.strftime("%H:%M UTC", time.gmtime(until))
        )
        notice = f"{reason}; group {group.name} parked {when}"
        if announce:
            self._events.append(notice)
        return notice

    def _overloaded(self, wait: float | None) -> None:
        self._overload_strikes += 1
        backoff = min(OVERLOAD_BASE * 2 ** (self._overload_strikes - 1), OVERLOAD_MAX)
        backoff *= self._random.uniform(0.8, 1.2)
        self._overload_until = self._clock() + max(backoff, wait or 0.0)
        if self._overload_strikes == 1:
            self._events.append("the provider is overloaded; backing off")

    def _next_change(self) -> float | None:
        """Seconds until a cooling key or the overload backoff ends."""
        waits = [w for w in (self._next_cooldown_end(),) if w is not None]
        now = self._clock()
        if self._overload_until > now:
            waits.append(self._overload_until - now)
        return min(waits) if waits else None

    def _next_cooldown_end(self) -> float | None:
        now = self._clock()
        ends = [
            k.cooling_until - now
            for k in self._keys
            if not k.revoked and not k.leases and k.cooling_until > now
        ]
        return min(ends) if ends else None

    def _cooldown(self, strikes: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(float(retry_after), self._max)  # the provider's word is the minimum wait
        exponential = min(self._base * 2 ** (strikes - 1), self._max)
        return exponential * self._random.uniform(0.9, 1.1)

    def _reclaim_dead_holders(self) -> bool:
        dead = [
            lease_id
            for lease_id, r in self._leases.items()
            if r.holder_pid and not pid_alive(r.holder_pid)
        ]
        for lease_id in dead:
            record = self._leases.pop(lease_id)
            record.key.leases.discard(lease_id)
        return bool(dead)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _parked_value(until: float) -> float | str:
    return "run" if until == FOREVER else round(until, 3)
