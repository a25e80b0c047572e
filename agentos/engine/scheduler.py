"""Which item runs next, and what an attempt's end means for its item. Pure bookkeeping: no
processes, no I/O, so every rule here is unit-tested directly.

    attempt ended       counts as a failure?   next
    -------------       --------------------   ----
    done                -                      item done
    failed, timeout     yes                    retry after 2 s, 4 s, ... (cap 60 s) while
                                               failures <= --retries, else final
    rate_limited        no                     front of the queue (another key), at most
                                               --max-rate-limit-waits times, then failed
    rejected (bad key)  no                     front of the queue
    failed, over budget yes                    final: another attempt would only spend more
    worker died here    yes                    like failed
    innocent bystander  no                     front of the queue (the pool broke under it)
    interrupted         -                      final: not done, a resume reruns it
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from agentos.item.workflow import Item
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.statuses import FINAL_STATUSES, Status
from agentos.text import plural


class ItemState:
    """One item's progress through the batch. Setting `status` keeps the scheduler's counts up
    to date, so progress costs O(1) per event instead of a scan of every item."""

    __slots__ = (
        "_counts",
        "_status",
        "attempts",
        "detail",
        "error",
        "failures",
        "item",
        "key_label",
        "outputs",
        "rate_limit_waits",
        "requeues",
        "retry_delay",
        "seconds",
    )

    def __init__(self, item: Item, counts: Counter[Status] | None = None) -> None:
        self.item = item
        self._counts = counts if counts is not None else Counter()
        self._status = Status.PENDING
        self._counts[Status.PENDING] += 1
        self.attempts = 0  # attempts started (the attempt number), including requeued ones
        self.requeues = 0  # attempts that ended queued again, uncounted: refused, bystander
        self.failures = 0  # attempts that counted against --retries
        self.rate_limit_waits = 0
        self.retry_delay = 0.0  # the backoff before the pending retry
        self.seconds = 0.0
        self.error = ""
        self.detail = ""  # how a done item ended ("Draft"), from its last attempt
        self.outputs: dict[str, str] = {}  # what it produced, from its last attempt that said
        self.key_label: str | None = None

    @property
    def status(self) -> Status:
        return self._status

    @status.setter
    def status(self, value: Status) -> None:
        self._counts[self._status] -= 1
        self._counts[value] += 1
        self._status = value

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def tries(self) -> int:
        """The attempts that count: those that ended the item or counted against --retries,
        not the ones queued again because a key was refused or the pool broke under them."""
        return self.attempts - self.requeues


class Backoff(NamedTuple):
    """The wait before a failed item's next try: `base` seconds, doubled with each failure,
    at most `cap` (--retry-backoff is the base)."""

    base: float = 2.0
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.base * 2 ** (failures - 1), self.cap)


DEFAULT_BACKOFF = Backoff()


class Scheduler:
    def __init__(
        self,
        items: Iterable[Item],
        *,
        retries: int = 1,
        max_rate_limit_waits: int = 20,
        backoff: Backoff = DEFAULT_BACKOFF,
        attempts_before: Mapping[str, int] | None = None,
        requeues_before: Mapping[str, int] | None = None,
    ) -> None:
        """`attempts_before`: attempts an earlier pass made (--resume), by item id; attempt
        numbers continue from there, so earlier attempts' records are never overwritten.
        `requeues_before`: how many of them were queued again, uncounted."""
        self._counts: Counter[Status] = Counter()
        self.states = [ItemState(item, self._counts) for item in items]
        if attempts_before:
            for state in self.states:
                state.attempts = attempts_before.get(state.id, 0)
        if requeues_before:
            for state in self.states:
                state.requeues = requeues_before.get(state.id, 0)
        self.retries = retries
        self.max_rate_limit_waits = max_rate_limit_waits
        self.backoff = backoff
        self._ready: deque[ItemState] = deque(self.states)
        self._delayed: list[tuple[float, int, ItemState]] = []
        self._tiebreak = 0
        self.running: dict[str, ItemState] = {}

    # -- queue
    def _promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, state = heapq.heappop(self._delayed)
            self._ready.append(state)

    def peek_ready(self, now: float | None = None) -> ItemState | None:
        self._promote(time.monotonic() if now is None else now)
        return self._ready[0] if self._ready else None

    def has_waiting(self) -> bool:
        return bool(self._ready or self._delayed)

    def next_delay(self, now: float | None = None) -> float | None:
        if self._ready or not self._delayed:
            return None
        return max(0.0, self._delayed[0][0] - (time.monotonic() if now is None else now))

    def start(self, state: ItemState) -> int:
        """Take `state` off the queue (it must be the head) and return its attempt number."""
        head = self._ready.popleft()
        assert head is state, "start() must be given the head of the queue"
        state.attempts += 1
        state.status = Status.RUNNING
        self.running[state.id] = state
        return state.attempts

    def _requeue_front(self, state: ItemState) -> None:
        state.status = Status.PENDING
        self._ready.appendleft(state)

    def _requeue_later(self, state: ItemState, delay: float) -> None:
        state.status = Status.PENDING
        self._tiebreak += 1
        heapq.heappush(self._delayed, (time.monotonic() + delay, self._tiebreak, state))

    # -- outcomes
    def finish(self, state: ItemState, result: AttemptResult, rate_limit_wait: float = 0.0) -> bool:
        """Apply an attempt's result. Returns True when the item reached a final status.

        `rate_limit_wait`: how long a rate-limited item waits before it is queued again. With keys
        it is 0 (the key cools down, another key can take the item at once); without keys there
        is nothing else to wait on, so the runner passes the provider's Retry-After."""
        self.running.pop(state.id, None)
        state.seconds += result.runtime
        state.key_label = result.key_label or state.key_label
        if result.outputs:
            state.outputs = result.outputs
        if result.status == Status.DONE:
            state.status, state.error, state.detail = Status.DONE, "", result.detail
            return True
        state.error = result.error
        if result.status in (Status.RATE_LIMITED, Status.REJECTED):
            if result.status == Status.RATE_LIMITED:
                state.rate_limit_waits += 1
                if state.rate_limit_waits > self.max_rate_limit_waits:
                    state.status = Status.FAILED
                    state.error = (
                        f"rate limited {plural(state.rate_limit_waits, 'time')} "
                        f"(--max-rate-limit-waits {self.max_rate_limit_waits}): "
                        f"{result.error}"
                    )
                    return True
            state.requeues += 1
            if rate_limit_wait > 0:
                state.retry_delay = rate_limit_wait
                self._requeue_later(state, rate_limit_wait)
            else:
                self._requeue_front(state)
            return False
        if result.status == Status.INTERRUPTED:
            state.status = Status.INTERRUPTED
            return True
        # failed or timeout: counts against --retries
        state.failures += 1
        if state.failures <= self.retries and result.retry:
            delay = self.backoff.delay(state.failures)
            state.retry_delay = delay
            self._requeue_later(state, delay)
            return False
        state.status = Status.TIMEOUT if result.status == Status.TIMEOUT else Status.FAILED
        return True

    def unstart(self, state: ItemState) -> None:
        """The attempt never began (it was still queued when the run drained): as if never
        started."""
        self.running.pop(state.id, None)
        state.attempts -= 1
        self._requeue_front(state)

    def bystander(self, state: ItemState) -> None:
        """The pool broke while this item ran elsewhere: run it again, uncounted."""
        self.running.pop(state.id, None)
        state.requeues += 1
        self._requeue_front(state)

    def stop_waiting(self) -> list[ItemState]:
        """Draining: everything still queued will not run this time."""
        stopped = list(self._ready) + [s for _, _, s in self._delayed]
        self._ready.clear()
        self._delayed.clear()
        for state in stopped:
            state.status = Status.NOT_RUN
        return stopped

    def fail_waiting(self, reason: str) -> list[ItemState]:
        failed = self.stop_waiting()
        for state in failed:
            state.status, state.error = Status.FAILED, reason
        return failed

    def counts(self) -> dict[Status, int]:
        wanted = (*FINAL_STATUSES, Status.RUNNING, Status.PENDING)
        return {status: self._counts[status] for status in wanted}
