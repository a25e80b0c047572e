"""Sequential mode: no `--parallel`. Items run one after another in this process, exactly like a
plain tool: no pool, no key server, no prefixes, output straight to the terminal.

Two things still hold, because they are promises rather than parallel features:

* keys are leased, cooled down and redacted (with keys configured, output goes through the same
  listener as in parallel mode, unprefixed, so a printed key is replaced by its label);
* retries, timeouts, the journal, the summary and two-stage Ctrl+C behave as in parallel mode.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, cast

from agentos.engine.attempt import AttemptSpec, CaptureFactory, Task, run_attempt
from agentos.engine.batch import Batch
from agentos.engine.shutdown import GraceTimer
from agentos.errors import Interrupted, KeysExhausted
from agentos.item.keys import AttemptKeyService
from agentos.item.process_tree import kill_tagged
from agentos.rundir.statuses import Phase, Status

if TYPE_CHECKING:
    from agentos.engine.plan import RunPlan
    from agentos.engine.session import Run
    from agentos.governor.governor import Governor


class SequentialBackend:
    """No `--parallel`: the items one after another, in this process; the governor too."""

    @contextlib.contextmanager
    def started(self, plan: RunPlan) -> Iterator[Governor | None]:
        if not plan.keys.configs:
            yield None
            return
        from agentos.governor import parked as parked_keys
        from agentos.governor.governor import Governor

        cooldown = plan.options.keys.rate_limit_cooldown
        yield Governor(plan.keys.configs, cooldown, parked=parked_keys.load())

    def run(self, run: Run) -> None:
        try:
            run_sequential(run.batch, run.plan.attempt_spec(), run.capture())
        finally:
            kill_tagged(run.plan.run_id)  # anything an item left behind


def run_sequential(batch: Batch, spec: AttemptSpec, capture: CaptureFactory | None) -> None:
    state = batch.shutdown
    scheduler = batch.scheduler
    grace = GraceTimer(state)
    in_item = False

    def on_signal(signum: int) -> None:
        if state.phase == Phase.DRAINING and state.announced != Phase.DRAINING:
            state.announced = Phase.DRAINING
            if scheduler.running:
                batch.terminal.message(
                    "stopping: waiting for 1 running item (Ctrl+C again to terminate)", force=True
                )
                grace.start_if_draining()
            batch.write_state(event=True, flush=True)
        if state.terminating and in_item:
            raise Interrupted(state.first_signal or signum)

    @contextmanager
    def item_running() -> Iterator[None]:
        nonlocal in_item
        in_item = True
        try:
            yield
        finally:
            in_item = False

    try:
        with batch.signals_to(on_signal):
            _loop(batch, spec, capture, item_running)
    finally:
        grace.cancel()
    batch.stop_waiting()


def _loop(
    batch: Batch,
    spec: AttemptSpec,
    capture: CaptureFactory | None,
    item_running: Callable[[], AbstractContextManager[Any]],
) -> None:
    """Start items one after another until none is left, or the run drains."""
    state = batch.shutdown
    scheduler = batch.scheduler
    while not state.draining:
        current = scheduler.peek_ready()
        if current is None:
            delay = scheduler.next_delay()
            if delay is None:
                break
            time.sleep(min(delay, 0.5))
            batch.write_state()
            continue
        batch.may_start(current)  # --budget: raises BudgetReached when the run must stop
        lease = None
        if batch.keys is not None:
            try:
                batch.check_keys(every=0.0)
                lease = batch.take_lease(current) if batch.lease_items else None
            except KeysExhausted:
                batch.stop_waiting()
                raise
            if batch.lease_items and lease is None:
                status = batch.keys.status()
                time.sleep(min(status.next_free_in or 0.5, 0.5))
                continue
        attempt = scheduler.start(current)
        batch.started(current, lease)
        batch.write_state(flush=True)  # the item runs here: no loop writes it later
        task = Task(
            current.item,
            attempt,
            lease.lease_id if lease is not None else None,
            batch.account.spent_before(current.id),
        )
        # in this process the batch's keys are the Governor itself: it answers an attempt too
        keys = cast("AttemptKeyService | None", batch.keys)
        result = run_attempt(spec, task, keys, capture, around_item=item_running)
        batch.end_attempt(current, lease, result)
        if result.status == Status.INTERRUPTED:
            break
