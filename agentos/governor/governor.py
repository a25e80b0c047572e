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
  answer: real token usage, the limit headers, or the kind of "no" (item.refusals). A refused
  call is asked for again by the agent; the item keeps its finished calls and spends no retry.
* **Per item** (CLI agents, `agentos run`): a subprocess reads its key once, from its
  environment, so it holds a lease for the attempt: `acquire(item)` / `claim` / `release`, with
  `slots` items per key and no lease on a key whose group is out of budget for the day, parked
  or cooling.

The Governor is a facade over the parts that each own one piece of its state; it holds the one
lock they all run under, and wakes the callers that wait for a key when something changes:

    Governor ── KeyRing  (keys.py)     the keys and their groups
       ├──── Outages  (outages.py)  parks (quota), requests per day, the provider overloaded
       ├──── Leases   (leases.py)   per-item leases, cooldowns after a rate limit
       ├──── Calls    (calls.py)    per-call grants, and the four "no"s of a call
       ├──── KeyReport (report.py)  the counts and rows the run shows
       └──── Notices  (notices.py)  what changed, for the user (`events`)

Thread-safe: the key server (a Manager) serves each client connection from its own thread. Its
public methods are what the Manager proxy and the Dask actor expose.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from agentos.governor.calls import Calls
from agentos.governor.clocks import Clocks
from agentos.governor.credentials import BASE_COOLDOWN, KeyConfig, Lease
from agentos.governor.keys import Cooldown, KeyRing
from agentos.governor.leases import Leases
from agentos.governor.notices import Notices
from agentos.governor.outages import Outages
from agentos.governor.report import KeyReport, KeyStatus
from agentos.item.keys import CallGrant, KeyOutcome
from agentos.item.refusal_kinds import RefusalKind

WINDOW_WAIT = 2.0  # seconds a call waits in the governor for a window before asking again


class Governor:
    """Keys, their groups and budgets. Constructed with the keys (plain strings or `KeyConfig`s
    carrying per-key attributes); `parked` maps key fingerprints to (until, reason) remembered
    from earlier runs. `seed`, `clock` and `wall` are for tests: the jitter's seed, the
    monotonic clock, the wall clock."""

    def __init__(
        self,
        keys: Iterable[str | KeyConfig] = (),
        base_cooldown: float = BASE_COOLDOWN,
        parked: dict[str, tuple[float, str]] | None = None,
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._cond = threading.Condition()
        clocks = Clocks(clock, wall, random.Random(seed))
        cooldown = Cooldown(base_cooldown)
        ids = itertools.count(1)  # leases and calls: one id is never both
        self._clock = clock
        self._notices = Notices()
        self._ring = KeyRing()
        self._outages = Outages(clocks, self._notices, parked or {})
        self._leases = Leases(self._ring, self._outages, clocks, ids, cooldown)
        self._calls = Calls(self._ring, self._outages, clocks, ids, self._notices, cooldown)
        self._report = KeyReport(self._ring, self._outages, clocks)
        self.add_keys(list(keys))

    # -- keys
    def add_keys(self, keys: list[str | KeyConfig]) -> list[str]:
        """Add keys (the Dask backend hands them to its actor this way, in a direct call rather
        than in task arguments). Returns all labels."""
        with self._cond:
            for key in self._ring.add(keys):
                self._outages.recall(key)
            self._cond.notify_all()
            return self._ring.labels()

    # -- per-item leases (CLI agents, agentos run)
    def acquire(self, item_id: str, timeout: float = 0.0, holder_pid: int = 0) -> Lease | None:
        """A lease on a key with a free slot, waiting up to `timeout` seconds; None when none
        came free (every key full, cooling, parked or retired)."""
        deadline = self._clock() + max(0.0, timeout)
        with self._cond:
            while True:
                lease = self._leases.take(item_id, holder_pid)
                if lease is not None:
                    return lease
                left = deadline - self._clock()
                if left <= 0 or self._ring.all_revoked():
                    return None
                wake = self._next_change()
                self._cond.wait(left if wake is None else min(left, max(0.01, wake)))

    def lease_label(self, label: str, item_id: str) -> Lease | None:
        """Mark `label` leased to `item_id` now, whatever its state: how a governor started
        afresh learns which keys running items already hold (Dask actor restart)."""
        with self._cond:
            return self._leases.lease_label(label, item_id)

    def claim(self, lease_id: int, holder_pid: int) -> tuple[str, str]:
        """The key behind a lease, for the process that will use it."""
        with self._cond:
            return self._leases.claim(lease_id, holder_pid)

    def release(
        self,
        lease_id: int,
        outcome: KeyOutcome = KeyOutcome.OK,
        retry_after: float | None = None,
        kind: str = "",
    ) -> float:
        """End a lease. `kind` refines a rate-limited outcome (signals: rate, quota,
        overloaded). Returns the cooldown applied to the key (0 unless rate limited)."""
        with self._cond:
            cooldown = self._leases.release(lease_id, outcome, retry_after, kind)
            if cooldown is None:
                return 0.0
            self._cond.notify_all()
            return cooldown

    def reclaim(
        self, item_ids: list[str] | None = None, holder_pid: int | None = None
    ) -> list[str]:
        """Release the leases (and calls) of these items / this holder. Returns the labels."""
        with self._cond:
            freed = self._leases.drop(item_ids, holder_pid)
            if item_ids is not None:
                self._calls.drop(item_ids)
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
                grant = self._calls.grant(item_id, tokens, pinned)
                if grant is not None:
                    return grant
                left = deadline - self._clock()
                if left <= 0:
                    return CallGrant(0, "", "", 0.0, "waiting for calls in flight")
                self._cond.wait(left)

    def end_call(
        self, call_id: int, outcome: KeyOutcome | RefusalKind, info: dict[str, Any] | None = None
    ) -> str:
        """Report how a call ended: ok (with `tokens` used and the limit headers' figures) or a
        refusal kind (with `wait`, `limit_unit`/`limit_per`/`limit`, `detail`). Returns what the
        refusal changed (a key parked or retired), also queued for the user (`events`), else
        ""."""
        with self._cond:
            notice = self._calls.end(call_id, outcome, info or {})
            if notice is None:
                return ""
            self._cond.notify_all()
            return notice

    def confirm_call(self, call_id: int) -> bool:
        """After a granted call's delay: may it still go? Not when its key was parked or retired
        meanwhile (a quota refusal of another call); the grant is then dropped, uncounted, and
        the caller asks again."""
        with self._cond:
            going = self._calls.confirm(call_id)
            if going is False:
                self._cond.notify_all()
            return bool(going)

    # -- inspection
    def status(self) -> KeyStatus:
        with self._cond:
            return self._report.status()

    def snapshot(self) -> list[dict[str, object]]:
        """Every key: label, fingerprint, group, state, leases, calls, the group's limits and
        refusals, parked-until (epoch, or "run"). What the summary and `agentos keys` show."""
        with self._cond:
            return self._report.snapshot()

    def parked_keys(self) -> dict[str, tuple[float, str]]:
        """Full fingerprint -> (until, reason) of every parked key, to remember across runs
        (keys parked for the run only are remembered for a day: a quota with no stated reset)."""
        with self._cond:
            return self._outages.parked_keys(self._ring)

    def events(self) -> list[str]:
        """Notices since the last call (a key parked, the provider overloaded), for the user."""
        with self._cond:
            return self._notices.take()

    def labels(self) -> list[str]:
        return self._ring.labels()

    def ping(self) -> bool:
        return True

    def _next_change(self) -> float | None:
        """Seconds until a cooling key or the overload backoff ends."""
        now = self._clock()
        waits = [
            w
            for w in (self._ring.next_cooldown_end(now), self._outages.overload_left(now))
            if w is not None
        ]
        return min(waits) if waits else None
