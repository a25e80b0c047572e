"""What every backend shares: the queue, the keys, the journal, progress and messages.

`Batch` is driven by a backend (agentos.engine.backends): the backend asks it for the next item
and a lease, runs the attempt however it runs attempts, and hands the `AttemptResult` back to
`end_attempt`, which releases the lease with the right outcome, records the attempt in the
journal, applies the retry rules and tells the user what happened.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from agentos.engine.output.progress import Progress
from agentos.engine.output.terminal import Terminal
from agentos.engine.scheduler import Backoff, ItemState, Scheduler
from agentos.engine.shutdown import ShutdownState
from agentos.errors import EXIT_ITEMS_FAILED, EXIT_OK, KeyServerLost, KeysExhausted
from agentos.governor.credentials import Lease, Redactor
from agentos.item.keys import KeyOutcome
from agentos.item.refusal_kinds import RefusalKind
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.journal import Journal
from agentos.rundir.state import StateWriter
from agentos.rundir.statuses import Phase, Status
from agentos.text import countdown, seconds
from agentos.usage.budget import STOP, WAIT, BudgetReached
from agentos.usage.record import UsageLog
from agentos.usage.report import lost_attempt_usage

if TYPE_CHECKING:
    from agentos.engine.plan import RunPlan
    from agentos.governor.protocol import KeyService


_OUTCOME = {
    Status.DONE: KeyOutcome.OK,
    Status.FAILED: KeyOutcome.FAILED,
    Status.TIMEOUT: KeyOutcome.FAILED,
    Status.RATE_LIMITED: KeyOutcome.RATE_LIMITED,
    Status.REJECTED: KeyOutcome.REVOKED,
    Status.INTERRUPTED: KeyOutcome.RECLAIMED,
}


#: at most this many items' results in state.json (the rest are in summary.json at the end)
MAX_PRODUCED = 200


class Batch:
    def __init__(
        self,
        plan: RunPlan,
        journal: Journal,
        terminal: Terminal,
        keys: KeyService | None = None,
        shutdown: ShutdownState | None = None,
    ) -> None:
        """`keys`: the Governor, its Manager proxy or Dask actor, None without keys."""
        options = plan.options
        self.plan = plan
        self.workers = plan.workers or 1  # attempts at once
        self.attempts = options.attempts  # --timeout, --retries, ...
        self.key_options = options.keys  # --max-key-wait, --rate-limit-cooldown, ...
        self.verbose = options.output.says_more
        #: the run's usage and its --budget (agentos.usage)
        self.account = plan.account
        self.scheduler = Scheduler(
            plan.items,
            retries=options.attempts.retries,
            max_rate_limit_waits=options.keys.max_rate_limit_waits,
            backoff=Backoff(options.attempts.retry_backoff),
            attempts_before=plan.attempts_before,
            requeues_before=plan.requeues_before,
        )
        self.journal = journal
        self.terminal = terminal
        self.credentials = plan.keys.credentials
        self.keys = keys
        self._keys_checked = 0.0
        self.redactor = Redactor(self.credentials)
        self.shutdown = shutdown if shutdown is not None else ShutdownState(options.execution.grace)
        self.progress = Progress(
            terminal,
            len(plan.items),
            self.progress_counts,
            enabled=plan.parallel and not options.output.says_less,
        )
        self.progress.set_note("spend", self.account.progress_note())
        self._waiting_for_key = False  # within a stretch of waiting for a key (said once)
        self.keys_lost: KeyServerLost | None = None
        self._frozen_keys_report: list[dict[str, Any]] | None = None
        #: whom to tell of a signal, besides `shutdown` (a backend's event loop)
        self._signal_listeners: list[Callable[[int], None]] = []
        #: state.json for `agentos status`
        self.run_state = StateWriter(plan.run_path, plan.name, time.time())
        self._attempt_started: dict[str, tuple[float, str | None]] = {}  # id -> (epoch, label)
        #: the run stops starting items for a reason of its own (--budget, keys out of quota)
        self.stopping = False
        self._attempt_clock: Callable[[str, int], float | None] | None = None

    @property
    def lease_items(self) -> bool:
        """Attempts take an item lease (keys per item) rather than asking per call."""
        return self.keys is not None and self.plan.keys.mode == "item"

    # -- what a backend tells the batch
    def signal_received(self, signum: int) -> None:
        for listener in list(self._signal_listeners):
            listener(signum)

    @contextlib.contextmanager
    def signals_to(self, listener: Callable[[int], None]) -> Iterator[None]:
        """While the block runs, `listener(signum)` hears of every signal the run gets."""
        self._signal_listeners.append(listener)
        try:
            yield
        finally:
            self._signal_listeners.remove(listener)

    def clock_attempts(self, began: Callable[[str, int], float | None]) -> None:
        """For a backend whose submitted attempts may wait in a worker's queue: `began(item id,
        attempt)` says when an attempt began to run (epoch), None while it waits, so that
        state.json lists only those that run, since they began."""
        self._attempt_clock = began

    def replace_keys(self, keys: KeyService | None) -> None:
        """The keys service again, after it was lost and started anew (the Dask key actor)."""
        self.keys = keys
        self.keys_lost = None

    def freeze_keys_report(self) -> list[dict[str, Any]]:
        """The keys' report as it is now, kept for the rest of the run (the summary, the last
        state.json) whatever becomes of the keys service."""
        self._frozen_keys_report = self.keys_report()
        return self._frozen_keys_report

    def lost_usage(self, item_id: str, attempt: int, label: str | None) -> UsageLog | None:
        """What an attempt that could not report spent, read from its usage files."""
        return lost_attempt_usage(
            self.plan.run_path, item_id, attempt, label, prices=self.plan.prices,
            redact=self.redactor.text,
        )  # fmt: skip

    # -- keys
    def _ask(self, method: str, *args: Any) -> Any:
        """Call the coordinator. Its Manager process dying surfaces here as a broken connection:
        that becomes one clear KeyServerLost, after which returning leases is a no-op."""
        if self.keys_lost is not None:
            raise self.keys_lost
        try:
            return getattr(self.keys, method)(*args)
        except (EOFError, OSError) as exc:
            self.keys_lost = KeyServerLost(
                f"the key server process died ({type(exc).__name__}); no new item can get a key, "
                "so the run stops after the running items. Finished work is kept: rerun the "
                "same command to continue"
            )
            raise self.keys_lost from None

    def take_lease(self, state: ItemState, wait: float = 0.0) -> Lease | None:
        """A lease for `state`, or None when every key is busy, cooling or revoked (the caller
        tries again later; when all are revoked, the waiting items fail here)."""
        lease: Lease | None = self._ask("acquire", state.id, wait, 0)
        if lease is not None:
            if self._waiting_for_key:
                self._waiting_for_key = self._next_item_waits(self._ask("status"))
            return lease
        status = self._ask("status")
        if status.revoked == status.total:
            failed = self.scheduler.fail_waiting(
                f"every key was rejected by the provider ({status.total} of {status.total}); "
                "check the keys in --credentials-file or AGENTOS_CREDENTIALS"
            )
            for s in failed:
                self.terminal.message(f"{s.id} failed: {s.error}", force=True)
            return None
        # what a wait for keys says is loaded only by a run that waits for one
        from agentos.engine.output.waiting import all_out, keys_busy

        out_for = getattr(status, "all_out_for", None)
        if out_for is not None and out_for > self.key_options.max_key_wait:
            raise KeysExhausted(all_out(status))
        if not self._waiting_for_key:
            self._waiting_for_key = True
            self.terminal.message(keys_busy(status))
        return None

    def _next_item_waits(self, status: Any) -> bool:
        """After a lease that ended a wait: is the stretch of waiting still on? It is when no key
        is free and another item could start (a free slot) but will find none."""
        slots = self.workers - len(self.scheduler.running) - 1
        return status.free == 0 and slots > 0

    def check_keys(self, every: float = 0.25) -> None:
        """Between submissions: show what the governor has to say (a key parked, the provider
        overloaded) and stop the run when every key is out for longer than --max-key-wait."""
        now = time.monotonic()
        if self.keys is None or now - self._keys_checked < every:
            return
        self._keys_checked = now
        for notice in self._ask("events"):
            self.terminal.message(self.redactor.text(notice), force=True)
        status = self._ask("status")
        out_for = getattr(status, "all_out_for", None)
        if out_for is not None and out_for > self.key_options.max_key_wait:
            from agentos.engine.output.waiting import all_out

            raise KeysExhausted(all_out(status))
        # every key out, but back within --max-key-wait: the run waits, and shows for how long
        self.progress.set_note("keys", f"keys back in {countdown(out_for)}" if out_for else "")
        # a group the governor slowed down, while it holds (the change itself was a notice)
        self.progress.set_note("pacing", "; ".join(getattr(status, "pacing", ())))

    def release(self, lease: Lease | None, result: AttemptResult) -> float:
        """End the attempt's lease with the outcome its status implies; returns the cooldown."""
        if lease is None or self.keys is None or self.keys_lost:
            return 0.0
        try:
            cooldown: float = self._ask(
                "release",
                lease.lease_id,
                _OUTCOME[result.status],
                result.retry_after,
                result.refusal,
            )
        except KeyServerLost:
            return 0.0  # the executor reports it when it next asks for a lease
        return cooldown

    def reclaim(self, lease: Lease | None) -> None:
        if lease is not None and self.keys is not None and self.keys_lost is None:
            with contextlib.suppress(KeyServerLost):
                self._ask("release", lease.lease_id, KeyOutcome.RECLAIMED, None)

    def keys_report(self) -> list[dict[str, Any]]:
        """Each key's label, fingerprint, state at the end and how often it was leased."""
        if self._frozen_keys_report is not None:
            return self._frozen_keys_report
        if self.keys is None or self.keys_lost is not None:
            return []
        try:
            report: list[dict[str, Any]] = self._ask("snapshot")
        except KeyServerLost:
            return []
        return report

    # -- attempts
    def end_attempt(self, state: ItemState, lease: Lease | None, result: AttemptResult) -> bool:
        """Record one finished attempt. Returns True when the item reached its final status."""
        result.error = self.redactor.text(result.error)
        if not result.reported and result.usage is None:
            # killed before it could say: what it spent is still spent (and counts on a resume)
            with contextlib.suppress(Exception):
                result.usage = self.lost_usage(state.id, result.attempt, result.key_label)
        if result.refusal == RefusalKind.QUOTA:
            self._keys_checked = 0.0  # ask the governor before the next start: all keys out?
        cooldown = self.release(lease, result)
        wait = 0.0
        if result.status == Status.RATE_LIMITED and self.keys is None:
            wait = (
                result.retry_after
                if result.retry_after is not None
                else self.key_options.rate_limit_cooldown
            )
        final = self.scheduler.finish(state, result, rate_limit_wait=wait)
        self.journal.record(result, state.item, final=final)
        for notice in self.account.attempt_ended(state.id, result.usage, final=final):
            self.terminal.message(notice, force=True)
        self.progress.set_note("spend", self.account.progress_note())
        self._tell(state, lease, result, final, cooldown)
        self.update_progress()
        self.write_state(event=True)
        return final

    # -- --budget
    def may_start(self, state: ItemState) -> bool:
        """Before an item starts: does --budget allow it? False and nothing raised: wait (the
        first item is being measured). Raises BudgetReached when the run must drain; the
        waiting items are then not run."""
        budget = self.account.budget
        if budget is None:
            return True
        verdict = budget.verdict(self.scheduler.running.keys())
        if verdict == WAIT:
            return False
        if verdict == STOP:
            budget.reached = True
            self.stop_waiting()
            raise BudgetReached(budget)
        return True

    def started(self, state: ItemState, lease: Lease | None = None) -> None:
        """The item started: it holds its share of --budget until its attempt ends."""
        if self.account.budget is not None:
            self.account.budget.reserve(state.id)
        self._attempt_started[state.id] = (time.time(), lease.label if lease else None)
        self.write_state(event=True)

    def _tell(
        self,
        state: ItemState,
        lease: Lease | None,
        result: AttemptResult,
        final: bool,
        cooldown: float,
    ) -> None:
        label = lease.label if lease is not None else "the key"
        if result.status == Status.REJECTED:
            self.terminal.message(
                f"{label} rejected by the provider ({result.error}); not used again this run",
                force=True,
            )
        if result.status in (Status.DONE, Status.INTERRUPTED):
            if self.verbose:
                self.terminal.message(f"{state.id} {result.status} in {result.runtime:.1f} s")
        elif final:
            self.terminal.message(f"{state.id} {state.status}: {state.error}", force=True)
        elif (
            result.status == Status.RATE_LIMITED
            and lease is None
            and result.refusal == RefusalKind.QUOTA
        ):
            self.terminal.message(f"{state.id} waits for a key: {result.error}")
        elif result.status == Status.RATE_LIMITED and lease is None:
            self.terminal.message(
                f"{state.id} rate limited; trying again in {seconds(state.retry_delay)}"
            )
        elif result.status == Status.RATE_LIMITED and result.refusal == RefusalKind.QUOTA:
            self.terminal.message(f"{label} out of quota; {state.id} queued again")
        elif result.status == Status.RATE_LIMITED and result.refusal == RefusalKind.OVERLOADED:
            self.terminal.message(f"the provider is overloaded; {state.id} queued again")
        elif result.status == Status.RATE_LIMITED:
            self.terminal.message(
                f"{label} rate limited; cooling for {seconds(cooldown)}; {state.id} queued again"
            )
        elif result.status != Status.REJECTED:
            self.terminal.message(
                f"{state.id} {result.status}: {result.error}; retry {state.failures} of "
                f"{self.attempts.retries} in {seconds(state.retry_delay)}"
            )

    def update_progress(self, force: bool = False) -> None:
        self.progress.update(force=force)

    def progress_counts(self) -> tuple[int, int, int]:
        """(done, failed, running) now. Called from the output listener's thread too: the bar is
        redrawn with every item line."""
        counts = self.scheduler.counts()
        return (
            counts[Status.DONE],
            counts[Status.FAILED] + counts[Status.TIMEOUT],
            self.running_now(),
        )

    def running_now(self) -> int:
        """Attempts running: submitted ones, but at most one per worker. Without keys a parallel
        run queues a second attempt in each worker so the worker never idles; that one waits, and
        starts the moment the worker's current attempt ends, before its result even reaches us.
        (Counting attempts whose output connection arrived instead lags behind each of those
        starts, and counts the ended attempt and its successor together for a moment.)"""
        return min(len(self.scheduler.running), self.workers)

    def stop_waiting(self) -> None:
        self.scheduler.stop_waiting()

    # -- state.json
    def write_state(
        self, *, event: bool = False, flush: bool = False, final: dict[str, Any] | None = None
    ) -> None:
        """Rewrite state.json if it is due: cheap to call from a loop, at most one small write
        about once a second, plus one per event (`event`) and the last one (`final`). `flush`:
        write a pending event now, for a caller with no loop to do it later (sequential mode)."""
        writer = self.run_state
        if final is None and not writer.due(event=event) and not (flush and writer.dirty):
            return
        writer.write(self.state_data(final))

    def state_data(self, final: dict[str, Any] | None = None) -> dict[str, Any]:
        phase = Phase.STARTING if not self._attempt_started else self.shutdown.phase
        if phase == Phase.RUNNING and self.stopping:
            phase = Phase.DRAINING
        running = []
        queued = 0
        for item_id, state in self.scheduler.running.items():
            started, label = self._attempt_started.get(item_id, (None, None))
            if self._attempt_clock is not None:
                began = self._attempt_clock(item_id, state.attempts)
                if began is None:
                    queued += 1
                    continue
                started = round(began, 3)
            running.append(
                {"id": item_id, "attempt": state.attempts, "started": started, "key": label}
            )
        counts = self.scheduler.counts()
        counts[Status.RUNNING] -= queued
        counts[Status.PENDING] += queued
        total = self.account.total().total
        budget = self.account.budget
        details: dict[str, int] = {}  # what workflows said of done items ("Draft")
        produced: list[
            dict[str, str]
        ] = []  # what they made (a branch and its commit), when they say
        for state in self.scheduler.states:
            if state.detail and state.status == Status.DONE:
                details[state.detail] = details.get(state.detail, 0) + 1
            if state.outputs.get("summary") and len(produced) < MAX_PRODUCED:
                produced.append(
                    {"id": state.id, "status": state.status, "result": state.outputs["summary"]}
                )
        data: dict[str, Any] = {
            "phase": Phase.DONE if final is not None else phase,
            "details": details,
            "produced": produced,
            "workers": self.workers,
            "items": len(self.scheduler.states),
            "counts": {k: v for k, v in counts.items() if v},
            "running": running,
            "usage": {
                "calls": total.calls,
                "tokens": total.tokens,
                "cost_usd": None if total.cost is None else round(total.cost, 9),
                "budget_usd": budget.limit if budget is not None else None,
            }
            if total.calls or budget is not None
            else None,
            "keys": [
                {
                    k: row.get(k)
                    for k in (
                        "label",
                        "group",
                        "state",
                        "leases",
                        "calls",
                        "parked_until",
                        "refusals",
                        "rpm",
                        "rpm_source",
                        "pace_reason",
                        "noise_refusals",
                        "waited_s",
                    )
                }
                for row in self.keys_report()
            ],
        }
        if final is not None:
            data.update(final)
        return data

    # -- the end
    def exit_code(self) -> int:
        signalled = self.shutdown.exit_code
        if signalled is not None:
            return signalled
        counts = self.scheduler.counts()
        bad = (
            counts[Status.FAILED]
            + counts[Status.TIMEOUT]
            + counts[Status.INTERRUPTED]
            + counts[Status.NOT_RUN]
        )
        return EXIT_ITEMS_FAILED if bad else EXIT_OK
