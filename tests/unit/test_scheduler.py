from __future__ import annotations

import time

from agentos.engine.scheduler import Backoff, Scheduler
from agentos.item.workflow import Item
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.statuses import Status


def result(item_id: str, status: str, attempt: int = 1, **kw: object) -> AttemptResult:
    return AttemptResult(item_id, attempt, status, time.time(), 0.1, **kw)  # type: ignore[arg-type]


def make(n: int = 3, **kw: object) -> Scheduler:
    return Scheduler([Item(f"i{k}") for k in range(n)], **kw)  # type: ignore[arg-type]


def test_items_start_in_order_and_finish_done() -> None:
    s = make(2)
    first = s.peek_ready()
    assert first is not None and first.id == "i0"
    assert s.start(first) == 1
    assert s.finish(first, result("i0", "done")) is True
    assert first.status == "done"
    assert s.peek_ready().id == "i1"  # type: ignore[union-attr]


def test_failure_is_retried_with_backoff_then_final() -> None:
    s = make(1, retries=1, backoff=Backoff(0.05))
    state = s.peek_ready()
    assert state is not None
    s.start(state)
    assert s.finish(state, result("i0", "failed", error="boom")) is False
    assert state.status == Status.PENDING
    assert s.peek_ready() is None  # not before the backoff
    delay = s.next_delay()
    assert delay is not None and 0 < delay <= 0.05
    time.sleep(0.06)
    assert s.peek_ready() is state
    assert s.start(state) == 2
    assert s.finish(state, result("i0", "failed", 2, error="boom again")) is True
    assert state.status == "failed" and state.failures == 2 and state.error == "boom again"


def test_backoff_doubles_and_is_capped() -> None:
    s = make(1, retries=10, backoff=Backoff(2.0, 5.0))
    state = s.peek_ready()
    assert state is not None
    delays = []
    for attempt in range(1, 5):
        s.start(state)
        before = time.monotonic()
        s.finish(state, result("i0", "failed", attempt))
        not_before, _, queued = s._delayed.pop()
        assert queued is state
        delays.append(round(not_before - before, 1))
        s._ready.appendleft(state)  # skip the wait for the next round
    assert delays == [2.0, 4.0, 5.0, 5.0]


def test_rate_limited_goes_to_the_front_and_does_not_count() -> None:
    s = make(3, retries=0)
    a = s.peek_ready()
    assert a is not None
    s.start(a)
    assert s.finish(a, result("i0", "rate_limited", retry_after=3)) is False
    assert a.failures == 0 and a.rate_limit_waits == 1
    assert s.peek_ready() is a  # ahead of i1 and i2


def test_rate_limit_waits_are_bounded() -> None:
    s = make(1, max_rate_limit_waits=2)
    state = s.peek_ready()
    assert state is not None
    outcomes = []
    for n in range(3):
        s.start(state)
        outcomes.append(s.finish(state, result("i0", "rate_limited", n + 1, error="429")))
    assert outcomes == [False, False, True]
    assert state.status == "failed" and "--max-rate-limit-waits 2" in state.error


def test_timeout_counts_as_failure_and_ends_as_timeout() -> None:
    s = make(1, retries=0)
    state = s.peek_ready()
    assert state is not None
    s.start(state)
    assert s.finish(state, result("i0", "timeout", error="timed out")) is True
    assert state.status == "timeout"


def test_bystander_is_requeued_uncounted() -> None:
    s = make(2, retries=0)
    a = s.peek_ready()
    assert a is not None
    s.start(a)
    s.bystander(a)
    assert a.failures == 0 and a.status == Status.PENDING
    assert s.peek_ready() is a


def test_draining_marks_waiting_items_not_run() -> None:
    s = make(3)
    a = s.peek_ready()
    assert a is not None
    s.start(a)
    stopped = s.stop_waiting()
    assert [x.id for x in stopped] == ["i1", "i2"]
    assert all(x.status == Status.NOT_RUN for x in stopped)
    assert not s.has_waiting()
    assert s.counts()["running"] == 1


def test_without_keys_a_rate_limited_item_waits_before_its_next_attempt() -> None:
    s = make(2, retries=0)
    a = s.peek_ready()
    assert a is not None
    s.start(a)
    assert (
        s.finish(a, result("i0", "rate_limited", retry_after=0.05), rate_limit_wait=0.05) is False
    )
    assert a.failures == 0
    assert s.peek_ready().id == "i1"  # type: ignore[union-attr]  # i0 waits its turn
    time.sleep(0.06)
    s.start(s.peek_ready())  # type: ignore[arg-type]
    assert s.peek_ready() is a
