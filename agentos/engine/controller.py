"""The controller loop both parallel backends share (loky in pool.py, Dask in dask_backend.py).

    while True:
        second signal or --grace over  → terminate (the backend kills what runs)
        first signal                   → drain: no new submissions, say how many items run
        otherwise                      → fill: submit while capacity and keys allow
        nothing running and nothing more to do (or draining, or fatal) → done
        wait for events (futures done, signals) and handle each; backend tick; progress

Events arrive on a SimpleQueue, put there by future callbacks (other threads) and by the signal
handler (whose only other act is recording the signal: see shutdown.py). A backend supplies
`submit`, `finish`, and optionally `tick` (timeouts), `started` (is an attempt running yet, or
still queued) and `on_drain`.
"""

from __future__ import annotations

import queue
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentos.engine.scheduler import ItemState
from agentos.errors import AgentosError, KeyServerLost, KeysExhausted
from agentos.governor.credentials import Lease
from agentos.rundir.statuses import Phase
from agentos.text import plural
from agentos.usage.budget import BudgetReached

if TYPE_CHECKING:
    from agentos.engine.session import Run

TICK = 0.5  # seconds between backend ticks when no event comes


@dataclass(eq=False)
class Running:
    """A submitted attempt."""

    state: ItemState
    attempt: int
    lease: Lease | None
    submitted: float


class Controller(ABC):
    """The loop of a parallel backend over the run `run`, `capacity` attempts submitted at
    once."""

    def __init__(self, run: Run, capacity: int) -> None:
        self.session = run
        self.batch = run.batch
        self.spec = run.plan.attempt_spec()
        self.listener = run.listener
        self.run_id = run.plan.run_id
        self.capacity = capacity  # submitted attempts at once
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.inflight: dict[Any, Running] = {}
        self.fatal: AgentosError | None = None  # set when the run must stop after the running
        self.batch.clock_attempts(self._attempt_began)

    # -- what a backend provides
    @abstractmethod
    def submit(self, state: ItemState, attempt: int, lease: Lease | None) -> Any:
        """Start an attempt; return its future, or None if it could not be submitted."""

    @abstractmethod
    def finish(self, future: Any) -> None:
        """Record a done future's attempt (the future is still in `inflight`)."""

    def tick(self) -> None:
        """Called after every round of events (timeouts and such)."""
        return None

    def started(self, run: Running) -> bool:
        return True

    def began(self, run: Running) -> float | None:
        """When (monotonic) the attempt began running; None while it waits in a worker's queue.
        A backend that cannot tell says: when it was submitted."""
        return run.submitted if self.started(run) else None

    def on_drain(self) -> None:
        """Called once when draining begins."""
        return None

    def key_server_lost(self, exc: KeyServerLost) -> bool:
        """The keys became unreachable; True if the backend restored them (try again)."""
        return False

    def _attempt_began(self, item_id: str, attempt: int) -> float | None:
        """The epoch at which the attempt began running, None while it is still queued."""
        for run in self.inflight.values():
            if run.state.id == item_id and run.attempt == attempt:
                began = self.began(run)
                return None if began is None else time.time() - (time.monotonic() - began)
        return None

    # -- shared
    def on_done(self, future: Any) -> None:
        self.events.put(("done", future))

    def loop(self) -> None:
        shutdown = self.batch.shutdown
        scheduler = self.batch.scheduler
        while True:
            if shutdown.terminating or shutdown.grace_expired():
                shutdown.terminate_now()
                self._say("terminating: killing {}", "")
                self.batch.write_state(event=True)
                return
            if shutdown.phase == Phase.DRAINING:
                self._drain()
            elif self.fatal is None:
                self._check_keys()
                self.fill()
            stopping = shutdown.draining or self.fatal is not None
            if not self.inflight and (stopping or not scheduler.has_waiting()):
                return
            self._wait_for_events()
            self.tick()
            self.batch.update_progress()
            self.batch.stopping = self.fatal is not None
            self.batch.write_state()

    def fill(self) -> None:
        batch = self.batch
        while len(self.inflight) < self.capacity:
            state = batch.scheduler.peek_ready()
            if state is None:
                return
            try:
                if not batch.may_start(state):
                    return  # --budget: the first item is measured before others start
            except BudgetReached as exc:  # drain: the running items finish
                self.fatal = exc
                return
            lease = None
            if batch.keys is not None:
                try:
                    lease = batch.take_lease(state) if batch.lease_items else None
                except KeyServerLost as exc:
                    if self.key_server_lost(exc):
                        continue
                    self.fatal = exc
                    batch.terminal.message(exc.message, force=True)
                    return
                except KeysExhausted as exc:  # stop starting items; the running ones finish
                    self.fatal = exc
                    batch.stop_waiting()
                    return
                if batch.lease_items and lease is None:
                    return
            attempt = batch.scheduler.start(state)
            batch.started(state, lease)
            future = self.submit(state, attempt, lease)
            if future is None:
                return
            self.inflight[future] = Running(state, attempt, lease, time.monotonic())
            future.add_done_callback(self.on_done)

    def _check_keys(self) -> None:
        """The governor's news (a key parked, the provider overloaded), and the stop when every
        key is out for longer than --max-key-wait."""
        if self.batch.keys is None:
            return
        try:
            self.batch.check_keys()
        except KeysExhausted as exc:  # stop starting items; the running ones finish
            self.fatal = exc
            self.batch.stop_waiting()
        except KeyServerLost:
            pass  # the next lease says so, and the backend may restore it

    def _wait_for_events(self) -> None:
        timeout = TICK
        delay = self.batch.scheduler.next_delay()
        if delay is not None and len(self.inflight) < self.capacity:
            timeout = min(timeout, delay)
        try:
            event = self.events.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return
        while True:
            kind, value = event
            if kind == "done" and value in self.inflight:
                self.finish(value)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _drain(self) -> None:
        shutdown = self.batch.shutdown
        if shutdown.announced == Phase.DRAINING:
            return
        shutdown.announced = Phase.DRAINING
        self.on_drain()
        self.batch.stop_waiting()
        self._say("stopping: waiting for {}", " (Ctrl+C again to terminate)")
        self.batch.write_state(event=True)

    def _say(self, template: str, tail: str) -> None:
        n = sum(1 for run in self.inflight.values() if self.started(run))
        if n:
            self.batch.terminal.message(
                template.format(plural(n, "running item")) + tail, force=True
            )
