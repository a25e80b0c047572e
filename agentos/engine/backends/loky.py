"""The loky worker pool and the controller loop that drives it.

Data flow of a parallel run:

    parent process                                              worker processes (loky)
    ──────────────                                              ───────────────────────
    ParallelRun (main thread)                                   initialize_worker(): SIGINT dropped,
      │ take_lease(item) ──► key server (Manager process)       own process group, parent-death
      │   (CLI agents: keys per item)                           signal, key-server proxy
      │ submit(item, attempt, lease_id) ─────────────────────►  execute_in_worker():
      │                                   ┌── claim(lease_id) ◄─┤  key for this attempt only, or
      │                                   ├── acquire_call() ◄──┤  per call (ctx.call_key: HTTP
      │                                   ▼     end_call()      │  agents, paced by the governor)
      │                         Governor (agentos.governor)     │  fds 1,2 → pipes (capture.py)
      │                                                         │  execute_item(item, ctx)
      │                                                         │    └─ ctx.run(): own session
      │  OutputListener thread ◄── item bytes (two pipes per ───┤       process group, key in env
      │    "[id] line" → terminal   attempt, handed over a      │
      │                             control socket per worker)  │
      │    plain lines → logs/<id>.log, keys redacted           │
      │ ◄── AttemptResult (loky result queue) ──────────────────┘
      │ wait for the attempt's output to close, release the lease, journal, retry rules (Batch)
      │
      └─ events: SimpleQueue fed by future callbacks (loky thread), signal handlers, the listener

Worker death. loky answers a dead worker by failing every in-flight future with
TerminatedWorkerError and SIGKILLing the other workers: the pool is broken. Before it kills the
others it calls our future callbacks, so the first callback records which workers were already dead
at that moment: the item on a dead worker is `failed: worker died (SIGKILL)` and counts against
--retries; the others are bystanders, queued again without a count. Their leases are reclaimed,
their leftover processes killed by run tag, and a new pool is made (at most MAX_REBUILDS times).

Termination (second signal or --grace over): SIGTERM every worker group (a worker's SIGTERM handler
takes its item's process groups down first), wait briefly, loky shutdown with kill_workers, then
SIGKILL the groups, then kill anything still carrying the run tag: in that order, because loky's
kill misses processes that left the worker's tree.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool  # loky's errors subclass it
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.beneath import write_beneath
from agentos.engine.attempt import Task
from agentos.engine.backends.loky_worker import execute_in_worker, initialize_worker
from agentos.engine.controller import Controller, Running
from agentos.engine.options import MAX_WORKERS
from agentos.engine.scheduler import ItemState
from agentos.engine.shutdown import spawn_guard
from agentos.errors import PoolBroken
from agentos.governor.credentials import Lease
from agentos.item.process_tree import (
    RUN_TAG_ENV,
    kill_tagged,
    pid_alive,
    signal_group,
)
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.statuses import Status
from agentos.text import plural

if TYPE_CHECKING:
    from agentos.engine.plan import RunPlan
    from agentos.engine.session import Run
    from agentos.governor.protocol import GovernorHandle

MAX_REBUILDS = 10
OUTPUT_EOF_WAIT = 5.0  # seconds to wait for an attempt's output after its result arrived
TIMEOUT_BACKSTOP = 10.0  # parent kills a worker this long after the worker's own deadline


def start_method() -> str:
    """How loky starts workers: "fork" on Linux, "loky" (fork + exec) elsewhere or when
    AGENTOS_START_METHOD=loky asks for it. See the WorkerPool docstring for why."""
    chosen = os.environ.get("AGENTOS_START_METHOD", "")
    if chosen in ("fork", "loky"):
        return chosen
    return "fork" if sys.platform.startswith("linux") else "loky"


class WorkerPool:
    """A loky ProcessPoolExecutor (never the reusable singleton: its idle workers exit after 10 s)
    whose workers are started with SIGINT blocked and run `initialize_worker` first.

    Why workers are forked on Linux. loky's default start (fork, then exec a fresh interpreter)
    makes every worker import Python, loky and agentos again: about 0.2 s of CPU each, measured
    here, so 4 workers on a 2-core machine are ready only ~0.4 s after the parent, which was
    most of a short batch's run time. Forked workers are ready in milliseconds. loky warns that
    fork "does not respect POSIX" because a child forked from a threaded parent inherits locks
    other threads held. What keeps that safe here:

    * the first pool is forked before the parent starts any thread: the output listener starts
      right after the first submit, loky starts its own threads after spawning, and tqdm's
      monitor thread is disabled;
    * a pool rebuilt after a worker death is forked while the listener thread runs; the listener
      only ever holds its own locks and the terminal lock, which worker code never takes, and it
      allocates Python objects only while holding the GIL, which the forking thread has;
    * std streams are flushed before forking, so a child never re-prints the parent's buffer;
    * the key-server proxy reconnects in the child through multiprocessing's after-fork hooks.

    AGENTOS_START_METHOD=loky restores fork + exec (slower to start, nothing inherited)."""

    def __init__(self, workers: int, initargs: tuple[Any, ...], run_id: str) -> None:
        self.workers = min(workers, MAX_WORKERS)
        self._initargs = initargs
        self._env = {RUN_TAG_ENV: f"{run_id}/"}
        self.method = start_method()
        self._executor: Any = None  # loky.ProcessPoolExecutor, made on first submit
        self.processes: dict[int, Any] = {}  # pid -> loky process object, kept after loky drops it
        self.generation = 0

    def _ensure(self) -> Any:
        if self._executor is None:
            with _gc_paused():  # see agentos.__main__: what is imported lives to the end
                import loky  # only parallel runs pay for importing it

            self.generation += 1
            options: dict[str, Any] = {"env": self._env}
            if self.method == "fork":
                from loky.backend.context import get_context

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # the docstring says why
                    options = {"context": get_context("fork")}
            self._executor = loky.ProcessPoolExecutor(
                max_workers=self.workers,
                timeout=None,
                initializer=initialize_worker,
                initargs=self._initargs,
                **options,
            )
        return self._executor

    def submit(self, *args: Any) -> Future[AttemptResult]:
        executor = self._ensure()
        live = getattr(executor, "_processes", None)
        if live is not None and len(live) >= self.workers:
            return executor.submit(execute_in_worker, *args)
        if self.generation == 1 and self.method == "fork":
            # Python's recipe for forking without exec: what the parent holds now is shared
            # with the workers, and a collection in a worker must not write to it (copy-on-write)
            # nor spend time on it. Not on a rebuild: what would be frozen then includes the
            # garbage of the run so far, never to be collected.
            gc.freeze()
        # loky spawns (and starts its manager thread) inside submit()
        with spawn_guard(trackers="none" if self.method == "fork" else "all"):
            future: Future[AttemptResult] = executor.submit(execute_in_worker, *args)
        self.processes.update(getattr(executor, "_processes", None) or {})
        return future

    def worker_pids(self) -> list[int]:
        executor = self._executor
        live = dict(getattr(executor, "_processes", None) or {}) if executor else {}
        self.processes.update(live)
        return [pid for pid in self.processes if pid_alive(pid)]

    def dead_workers(self) -> dict[int, int]:
        """pid -> exit code of every known worker that has exited (non-blocking)."""
        dead = {}
        for pid, proc in list(self.processes.items()):
            with contextlib.suppress(Exception):
                code = proc.exitcode
                if code is not None:
                    dead[pid] = code
        return dead

    def discard(self) -> None:
        """Forget a broken executor (loky already killed its workers)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True, kill_workers=True)
        self.processes.clear()

    def shutdown(self, *, kill: bool) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if kill:
            pids = self.worker_pids()
            for pid in pids:
                signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
                time.sleep(0.02)
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True, kill_workers=True)
            for pid in pids:
                signal_group(pid, signal.SIGKILL)
        else:
            # Called only when every attempt has ended and its output is closed: the workers are
            # idle, with nothing to flush and no item processes (each attempt kills its own). A
            # SIGKILL ends them at once; loky's polite shutdown hands each a sentinel in turn and
            # took ~30 ms for 4 workers on 2 cores, a fifth of a small run's whole cost. What
            # loky's own thread does after that (reaping them, closing its queues: 3 to 10 ms
            # here) goes on while the summary is written, not before it.
            for pid in self.worker_pids():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                executor.shutdown(wait=False)
        self.processes.clear()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown cause"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"{signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit {code}"


class LokyBackend:
    """`--backend loky` (the default with --parallel): loky worker processes on this machine,
    the keys served to them by a Manager process (agentos.governor.service)."""

    @contextlib.contextmanager
    def started(self, plan: RunPlan) -> Iterator[GovernorHandle | None]:
        if not plan.keys.configs:
            yield None
            return
        from agentos.governor import parked as parked_keys
        from agentos.governor.service import start_key_server

        with spawn_guard(trackers="stdlib"):
            server, proxy = start_key_server(
                list(plan.keys.configs),
                plan.options.keys.rate_limit_cooldown,
                parked=parked_keys.load(),
            )
        try:
            yield proxy
        finally:
            with contextlib.suppress(Exception):
                server.shutdown()

    def run(self, run: Run) -> None:
        ParallelRun(run).run()


class ParallelRun(Controller):
    def __init__(self, run: Run) -> None:
        # One extra item is queued per worker, so a worker that finishes an item starts the next
        # at once instead of waiting for our round trip; queued items check the drain flag
        # before they start. Items that hold a key lease get no extra: a queued item would hold
        # a key it cannot use yet.
        batch = run.batch
        workers = min(run.plan.workers, MAX_WORKERS)
        super().__init__(run, capacity=workers * (1 if batch.lease_items else 2))
        listener = self.listener
        initargs = (os.getpid(), self.run_id, self.spec, run.keys, listener.address, listener.token)
        self.pool = WorkerPool(workers, initargs, self.run_id)
        self.rebuilds = 0
        if batch.verbose:
            terminal = batch.terminal
            listener.on_started = lambda item_id, attempt, pid: terminal.message(
                f"{item_id} started (attempt {attempt}, worker {pid})"
            )
        self._death: dict[int, dict[int, int]] = {}  # pool generation -> dead workers at break
        self._timed_out: set[tuple[str, int]] = set()

    # -- callbacks from other threads: record and enqueue only
    def on_done(self, future: Future[AttemptResult]) -> None:
        exc = future.exception()
        if isinstance(exc, BrokenProcessPool):
            generation = getattr(future, "_agentos_generation", 0)
            if generation not in self._death:
                # runs in loky's thread before it kills the surviving workers
                self._death[generation] = self.pool.dead_workers()
        super().on_done(future)

    # -- the run
    def run(self) -> None:
        shutdown = self.batch.shutdown
        if self.spec.drain_flag:
            # one a killed run left behind (or anything planted there) must not stop every
            # item of this run from starting
            with contextlib.suppress(OSError):
                os.unlink(self.spec.drain_flag)
        try:
            with self.batch.signals_to(lambda signum: self.events.put(("signal", signum))):
                self.loop()
        finally:
            if self.spec.drain_flag:
                with contextlib.suppress(OSError):
                    os.unlink(self.spec.drain_flag)
            terminate = shutdown.terminating or bool(self.inflight)
            self.pool.shutdown(kill=terminate)
            kill_tagged(self.run_id)
            for run in self.inflight.values():
                self._record_interrupted(run)
            self.inflight.clear()
        self.batch.stop_waiting()
        if self.fatal is not None:
            raise self.fatal

    def submit(self, state: ItemState, attempt: int, lease: Lease | None) -> Any:
        try:
            future = self.pool.submit(
                Task(
                    state.item,
                    attempt,
                    lease.lease_id if lease is not None else None,
                    self.batch.account.spent_before(state.id),
                )
            )
        except BrokenProcessPool:
            # the pool broke between two events; the break is being reported already
            self.batch.scheduler.bystander(state)
            self.batch.reclaim(lease)
            return None
        if not self.listener.started:
            self.listener.start()  # after the first fork: see WorkerPool
        future._agentos_generation = self.pool.generation  # type: ignore[attr-defined]
        return future

    # -- results
    def finish(self, future: Future[AttemptResult]) -> None:
        exc = future.exception()
        if isinstance(exc, BrokenProcessPool):
            self._handle_break(future, exc)
            return
        run = self.inflight.pop(future)
        if exc is not None:
            result = self._synthetic(run, Status.FAILED, f"{type(exc).__name__}: {exc}")
        else:
            result = future.result()
            if result.status == Status.NOT_STARTED:
                self.batch.scheduler.unstart(run.state)
                self.batch.reclaim(run.lease)
                return
            if not self.listener.wait_closed(run.state.id, run.attempt, OUTPUT_EOF_WAIT):
                self.listener.mark_lost(run.state.id, "its output did not close after it ended")
                self.batch.terminal.message(
                    f"{run.state.id}: output still open {OUTPUT_EOF_WAIT:.0f} s after the item "
                    "ended; later lines may be cut",
                    force=True,
                )
        self.batch.end_attempt(run.state, run.lease, result)

    def _synthetic(self, run: Running, status: Status, error: str, **kw: Any) -> AttemptResult:
        started_info = self.listener.running_pid(run.state.id, run.attempt)
        started = started_info[1] if started_info else run.submitted
        return AttemptResult(
            run.state.id,
            run.attempt,
            status,
            time.time() - (time.monotonic() - started),
            time.monotonic() - started,
            exit_code=kw.get("exit_code", -1),
            signal=kw.get("signal", 0),
            error=error,
            key_label=run.lease.label if run.lease else None,
            worker_pid=started_info[0] if started_info else 0,
            reported=False,
        )

    def _handle_break(self, first: Future[AttemptResult], exc: BaseException) -> None:
        """The pool broke: sort the in-flight items into the culprit(s) and bystanders."""
        generation = getattr(first, "_agentos_generation", 0)
        broken = [
            f
            for f, _ in self.inflight.items()
            if getattr(f, "_agentos_generation", 0) == generation
        ]
        deadline = time.monotonic() + 10.0
        for f in broken:  # loky fails them all at once; wait for the stragglers to be marked
            with contextlib.suppress(Exception):
                f.exception(timeout=max(0.0, deadline - time.monotonic()))
        dead = self._death.pop(generation, None) or self.pool.dead_workers()
        terminating = self.batch.shutdown.terminating
        self.listener.settle(timeout=1.0)  # learn which items had started, and on which worker
        for f in broken:
            run = self.inflight.pop(f)
            if f.done() and f.exception() is None:  # finished just before the break
                self.batch.end_attempt(run.state, run.lease, f.result())
                continue
            started = self.listener.running_pid(run.state.id, run.attempt)
            pid = started[0] if started else None
            if terminating:
                self._record_interrupted(run)
            elif (run.state.id, run.attempt) in self._timed_out:
                result = self._synthetic(
                    run,
                    Status.TIMEOUT,
                    f"timed out after {self.spec.timeout:g} s (worker killed)",
                    signal=signal.SIGKILL,
                )
                self.batch.end_attempt(run.state, run.lease, result)
            elif pid is not None and pid in dead:
                how = _describe_exit(dead[pid])
                result = self._synthetic(
                    run,
                    Status.FAILED,
                    f"worker died ({how})",
                    signal=-dead[pid] if dead[pid] < 0 else 0,
                )
                self.batch.end_attempt(run.state, run.lease, result)
            elif pid is None:  # still queued in the pool: it never started
                self.batch.reclaim(run.lease)
                self.batch.scheduler.unstart(run.state)
            else:
                self.batch.reclaim(run.lease)
                self.batch.scheduler.bystander(run.state)
        self.pool.discard()
        kill_tagged(self.run_id)
        if terminating:
            return
        self.rebuilds += 1
        if self.rebuilds > MAX_REBUILDS:
            broke = plural(self.rebuilds, "time")
            reason = f"the worker pool broke {broke} (last: {_first_line(exc)})"
            self.batch.scheduler.fail_waiting(reason)
            raise PoolBroken(
                f"{reason}; stopping. Check the items' memory use, or run "
                "sequentially (no --parallel) to see the crash"
            )
        self.batch.terminal.message(
            f"a worker died ({', '.join(_describe_exit(c) for c in dead.values()) or 'unknown'}); "
            f"restarting the pool ({self.rebuilds}/{MAX_REBUILDS})",
            force=True,
        )

    def tick(self) -> None:
        """Backstop for the worker's own SIGALRM deadline (an item stuck in C code ignores it)."""
        if not self.spec.timeout:
            return
        now = time.monotonic()
        for run in self.inflight.values():
            key = (run.state.id, run.attempt)
            started = self.listener.running_pid(*key)
            if started is None or key in self._timed_out:
                continue
            pid, t0 = started
            if now - t0 > self.spec.timeout + TIMEOUT_BACKSTOP:
                self._timed_out.add(key)
                self.batch.terminal.message(
                    f"{run.state.id} ignored its deadline; killing its worker", force=True
                )
                signal_group(pid, signal.SIGKILL)

    # -- shutdown
    def on_drain(self) -> None:
        if self.spec.drain_flag:
            flag = Path(self.spec.drain_flag)
            with contextlib.suppress(OSError):  # a link planted there is replaced, not followed
                write_beneath(flag.parent, flag.name, b"", durable=False, replace_link=True)

    def started(self, run: Running) -> bool:
        return self.listener.running_pid(run.state.id, run.attempt) is not None

    def began(self, run: Running) -> float | None:
        # its output connection's arrival: a forked worker picks the attempt up from its queue
        # only when the one before it ended
        found = self.listener.running_pid(run.state.id, run.attempt)
        return found[1] if found is not None else None

    def _record_interrupted(self, run: Running) -> None:
        if not self.started(run):  # still queued: it never ran, so it is "not run"
            self.batch.scheduler.unstart(run.state)
            self.batch.reclaim(run.lease)
            return
        sig = self.batch.shutdown.first_signal or signal.SIGTERM
        result = self._synthetic(
            run, Status.INTERRUPTED, f"interrupted by {signal.Signals(sig).name}", signal=sig
        )
        self.batch.end_attempt(run.state, run.lease, result)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
