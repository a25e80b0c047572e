"""What both execution modes share: the queue, the keys, the journal, progress and messages.

`Batch` is driven by an executor (`sequential.run_sequential` or `pool.ParallelRun`): the executor
asks it for the next item and a lease, runs the attempt however it runs attempts, and hands the
`AttemptResult` back to `end_attempt`, which releases the lease with the right outcome, records the
attempt in the journal, applies the retry rules and tells the user what happened.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentos.engine.attempt import AttemptResult
from agentos.engine.output.progress import Progress
from agentos.engine.output.terminal import Terminal
from agentos.engine.scheduler import ItemState, Scheduler
from agentos.engine.shutdown import ShutdownState
from agentos.errors import EXIT_ITEMS_FAILED, EXIT_OK, KeyServerLost, KeysExhausted
from agentos.governor import credentials as creds
from agentos.governor.credentials import Credential, Lease, Redactor
from agentos.governor.protocol import KeyService
from agentos.item.keys import KeyOutcome
from agentos.item.refusals import RefusalKind
from agentos.item.workflow import Item
from agentos.rundir.journal import Journal
from agentos.rundir.state import StateWriter
from agentos.rundir.statuses import Phase, Status
from agentos.usage.account import RunAccount
from agentos.usage.budget import STOP, WAIT, BudgetReached
from agentos.usage.record import UsageLog


@dataclass(frozen=True)
class ExecutionSettings:
    command_name: str
    workers: int | None  # None: sequential mode
    grace: float = 60.0
    timeout: float | None = 1800.0
    retries: int = 1
    retry_backoff: float = 2.0
    max_rate_limit_waits: int = 20
    rate_limit_pattern: str = r"429|rate.?limit|quota exceeded|RESOURCE_EXHAUSTED"
    rate_limit_cooldown: float = creds.BASE_COOLDOWN
    credential_env: str = "AGENTOS_API_KEY"
    #: "item": each attempt leases a key (CLI agents); "call": agents ask per call, items run
    #: without a lease (HTTP agents)
    key_mode: str = "item"
    max_key_wait: float = 900.0
    quiet: bool = False
    verbose: bool = False
    colour: bool = False


def seconds(value: float) -> str:
    """3.2 s, 42 s: a tenth of a second where it matters, whole seconds otherwise."""
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def _all_out(status: Any) -> str:
    """`all 3 keys out of quota until 17:00 UTC; rerun then (done items are kept)`."""
    usable = status.total - status.revoked
    if not usable:
        return (
            f"every key was rejected by the provider ({status.total} of {status.total}); "
            "check the keys in --credentials-file or AGENTOS_CREDENTIALS"
        )
    keys = f"all {usable} keys" if usable > 1 else "the only key"
    back = getattr(status, "back_at", None)
    if back is None or back == float("inf") or back > time.time() + 7 * 86400:
        return f"{keys} out of quota for this run; rerun when it is back (done items are kept)"
    when = time.strftime("%H:%M UTC", time.gmtime(back))
    return f"{keys} out of quota until {when}; rerun then (done items are kept)"


def countdown(seconds: float) -> str:
    """4m12s, 1h05m, 42s."""
    whole = max(0, int(seconds))
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


def _keys_busy(status: Any) -> str:
    """`all 2 keys are busy or cooling; next free in 42 s`: retired (revoked) keys are not counted
    as waited for, since they do not come back this run."""
    usable = status.total - status.revoked
    which = "usable key" if status.revoked else "key"
    if usable > 1:
        said = f"all {usable} {which}s are busy or cooling"
    else:
        said = f"the only {which} is busy or cooling"
    if status.revoked:
        said += f" ({status.revoked} retired)"
    if getattr(status, "parked", 0):
        said += f"; {status.parked} parked, out of quota"
    if status.next_free_in is not None:
        said += f"; next free in {seconds(status.next_free_in)}"
    return said


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
        settings: ExecutionSettings,
        items: list[Item],
        journal: Journal,
        terminal: Terminal,
        credentials: list[Credential],
        keys: KeyService | None = None,
        *,
        progress: bool = True,
        shutdown: ShutdownState | None = None,
        attempts_before: dict[str, int] | None = None,
        requeues_before: dict[str, int] | None = None,
        account: RunAccount | None = None,
    ) -> None:
        self.settings = settings
        #: the run's usage and its --budget (agentos.usage)
        self.account = account if account is not None else RunAccount()
        self.scheduler = Scheduler(
            items,
            retries=settings.retries,
            max_rate_limit_waits=settings.max_rate_limit_waits,
            backoff_base=settings.retry_backoff,
            attempts_before=attempts_before,
            requeues_before=requeues_before,
        )
        self.journal = journal
        self.terminal = terminal
        self.credentials = credentials
        self.keys = keys  # the Governor, its Manager proxy / Dask actor, or None without keys
        self._keys_checked = 0.0
        self.redactor = Redactor(credentials)
        self.shutdown = shutdown if shutdown is not None else ShutdownState(settings.grace)
        self.progress = Progress(
            terminal, len(items), self.progress_counts, enabled=progress and not settings.quiet
        )
        self._waiting_for_key = False  # within a stretch of waiting for a key (said once)
        self.keys_lost: KeyServerLost | None = None
        #: taken by a backend whose coordinator goes away with it (the Dask actor)
        self.frozen_keys_report: list[dict[str, Any]] | None = None
        #: what the executor wants done on a signal, besides recording it in `shutdown`
        self.on_signal: Callable[[int], None] | None = None
        #: state.json for `agentos status`; set by the runner
        self.run_state: StateWriter | None = None
        #: (item id, attempt, key label) -> what an attempt that could not report spent, read
        #: from its usage files (agentos.usage.report.lost_attempt_usage); set by the runner
        self.lost_usage: Callable[[str, int, str | None], UsageLog | None] | None = None
        self._attempt_started: dict[str, tuple[float, str | None]] = {}  # id -> (epoch, label)
        #: the run stops starting items for a reason of its own (--budget, keys out of quota)
        self.stopping = False
        #: set by an executor whose submitted attempts may wait in a worker's queue: when did
        #: this attempt begin to run (epoch), None while it waits? (state.json lists only those
        #: that run, since they began: the hand-over to a worker is earlier by a whole item)
        self.attempt_began: Callable[[str, int], float | None] | None = None

    @property
    def lease_items(self) -> bool:
        """Attempts take an item lease (keys per item) rather than asking per call. A property:
        the Dask backend hands its key actor over only once the cluster is up."""
        return self.keys is not None and self.settings.key_mode == "item"

    def signal_received(self, signum: int) -> None:
        if self.on_signal is not None:
            self.on_signal(signum)

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
        out_for = getattr(status, "all_out_for", None)
        if out_for is not None and out_for > self.settings.max_key_wait:
            raise KeysExhausted(_all_out(status))
        if not self._waiting_for_key:
            self._waiting_for_key = True
            self.terminal.message(_keys_busy(status))
        return None

    def _next_item_waits(self, status: Any) -> bool:
        """After a lease that ended a wait: is the stretch of waiting still on? It is when no key
        is free and another item could start (a free slot) but will find none."""
        slots = (self.settings.workers or 1) - len(self.scheduler.running) - 1
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
        if out_for is not None and out_for > self.settings.max_key_wait:
            raise KeysExhausted(_all_out(status))
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
        if self.frozen_keys_report is not None:
            return self.frozen_keys_report
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
        if not result.reported and result.usage is None and self.lost_usage is not None:
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
                else self.settings.rate_limit_cooldown
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
            if self.settings.verbose:
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
                f"{self.settings.retries} in {seconds(state.retry_delay)}"
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
        return min(len(self.scheduler.running), self.settings.workers or 1)

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
        if writer is None:
            return
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
            if self.attempt_began is not None:
                began = self.attempt_began(item_id, state.attempts)
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
            "workers": self.settings.workers or 1,
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
