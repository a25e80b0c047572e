"""A run in progress: `open_run(plan, backend)` owns everything a run holds open, in one place.

    open_run(plan, backend, on_open)                      ── the signal handlers (first: a Ctrl+C
      │                                                      during set-up is a stop request, not
      │                                                      a traceback through half-built state)
      ├─ the run directory (locked), then `on_open`          (run.json: a run stopped a moment
      │                                                      later can be resumed)
      ├─ terminal, journal, output listener
      ├─ backend.started(plan) → the keys service it hosts  (loky: a Manager process; Dask: the
      │                                                      cluster and its key actor; in-process
      │                                                      for a sequential run)
      └─ the Batch                                        ──► yields a `Run`

    run.execute()   backend.run(run); what the keys learned is kept for the next run; everything
                    but the run directory and the handlers is closed, so the summary that follows
                    is the last thing the run prints, still under the handlers

A backend is anything with `started(plan)` and `run(run)` (the `Backend` protocol).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from agentos.engine.batch import Batch
from agentos.engine.output.capture import ItemCapture, OutputChannel
from agentos.engine.output.listener import OutputListener
from agentos.engine.output.terminal import Terminal, colour_wanted
from agentos.engine.plan import RunPlan
from agentos.engine.shutdown import ShutdownState, handle_signals, mark_run_began
from agentos.errors import AgentosError
from agentos.item.workflow import Item
from agentos.rundir.journal import Journal, RunDir
from agentos.text import plural

if TYPE_CHECKING:
    from agentos.governor.protocol import KeyService

log = logging.getLogger("agentos")


class Backend(Protocol):
    """Where a run's attempts run (agentos.engine.backends)."""

    def started(self, plan: RunPlan) -> AbstractContextManager[KeyService | None]:
        """What the backend needs for the run, up for as long as it runs; yields the keys
        service it hosts (a Governor or a proxy of one), None for a run without keys."""

    def run(self, run: Run) -> None:
        """Run the batch to its end: every item tried, or the run stopped."""


class RunParts(NamedTuple):
    """What a run holds open while it goes (made by `open_run`)."""

    terminal: Terminal
    journal: Journal
    listener: OutputListener
    batch: Batch
    keys: KeyService | None  # the keys service the backend hosts; None without keys


class Run:
    """What `open_run` made for a run (see the module docstring)."""

    def __init__(
        self,
        plan: RunPlan,
        backend: Backend,
        shutdown: ShutdownState,
        parts: RunParts,
        started: float,
        resources: contextlib.ExitStack,
    ) -> None:
        self.plan = plan
        self.backend = backend
        self.shutdown = shutdown
        self.terminal = parts.terminal
        self.journal = parts.journal
        self.listener = parts.listener
        self.batch = parts.batch
        self.keys = parts.keys
        self.started = started
        self.resources = resources  # closed by `execute`, before the summary
        #: why the batch could not go on (--budget, keys out of quota, the pool broken)
        self.fatal: AgentosError | None = None
        self.keys_report: list[dict[str, Any]] = []

    def execute(self) -> None:
        """The batch, on the backend; then what the keys learned is kept, and the run's
        resources closed (see the module docstring)."""
        plan = self.plan
        if plan.parallel and plan.options.output.says_more:
            self.terminal.message(
                f"{plural(len(plan.items), 'item')}, {plural(plan.workers, 'worker')}, "
                f"run dir {plan.run_path}"
            )
        with self.resources:
            try:
                self.backend.run(self)
            except AgentosError as exc:  # the batch cannot go on; still journal and summarise
                self.fatal = exc
            # before the keys service goes; frozen, so that the last state.json shows them too
            self.keys_report = self.batch.freeze_keys_report()
            if self.keys is not None and self.batch.keys_lost is None:
                plan.keys.remember(self.keys)

    def capture(self) -> Callable[[Item, int], ItemCapture]:
        """How an attempt run in this process hands its output to the listener."""
        channel = OutputChannel(self.listener.address, self.listener.token)
        self.resources.callback(channel.close)  # closed before the listener stops

        def capture(item: Item, attempt: int) -> ItemCapture:
            return ItemCapture(channel, item.id, attempt)

        return capture


@contextlib.contextmanager
def open_run(plan: RunPlan, backend: Backend, on_open: Callable[[Path], None]) -> Iterator[Run]:
    """The run of `plan` on `backend`, open (see the module docstring); `on_open(run_path)`
    writes what the run is into its new directory."""
    started = time.time()
    shutdown = ShutdownState(plan.options.execution.grace)
    batches: list[Batch] = []  # the signal handler's way to the batch, once there is one

    def on_signal(signum: int) -> None:
        for batch in batches:
            batch.signal_received(signum)

    with contextlib.ExitStack() as stack:
        stack.enter_context(handle_signals(shutdown, on_signal=on_signal))
        mark_run_began()
        # the default place (.agentos/runs in the working directory) is reached without links
        execution = plan.options.execution
        default_place = execution.resume is None and execution.run_dir is None
        run_dir = RunDir(plan.run_path, confined=default_place).open()
        stack.callback(run_dir.close)
        on_open(plan.run_path)
        run_dir.check_writable()
        # closed by Run.execute before the summary; here only when set-up fails
        resources = stack.enter_context(contextlib.ExitStack())
        output = plan.options.output
        terminal = Terminal(colour=colour_wanted(output.no_color), quiet=output.says_less)
        resources.callback(terminal.close)
        journal = Journal(plan.run_path, plan.name)
        resources.callback(journal.close)
        for name in journal.repaired:
            log.warning("%s ended in a partial line (a write cut short); ended it", name)
        listener = _listener(plan, run_dir, terminal)
        resources.callback(listener.stop)
        if not plan.parallel:
            # a sequential run's output goes through the listener as well, unprefixed: it is
            # how each item's log is written and how printed keys are redacted (a parallel
            # run's backend starts it once its workers are forked)
            listener.start()
        keys = resources.enter_context(backend.started(plan))
        batch = Batch(plan, journal, terminal, keys, shutdown)
        batches.append(batch)
        resources.callback(batch.progress.close)
        batch.write_state(event=True)
        parts = RunParts(terminal, journal, listener, batch, keys)
        yield Run(plan, backend, shutdown, parts, started, resources)


def _listener(plan: RunPlan, run_dir: RunDir, terminal: Terminal) -> OutputListener:
    redactor = plan.redactor()
    listener = OutputListener(
        terminal,
        run_dir.logs,
        prefix=plan.parallel,
        redactor=redactor if redactor else None,
        log_limit=plan.options.attempts.item_log_size,
    )
    listener.set_max_secret_length(redactor.max_length)
    return listener
