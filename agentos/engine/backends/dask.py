"""`--backend dask`: the same batch on a Dask cluster, when one machine is not enough.

    parent (Dask client)                                Dask workers (any machine)
    --------------------                                --------------------------
    LocalCluster of --parallel single-threaded          key actor: the rate Governor on
      workers, or an existing cluster (--scheduler)       one worker; keys handed to it in a
    Batch: queue, retries, journal, summary,              direct actor call, never in a task
      leases through the actor                          run_item(spec, item, attempt, lease id):
    submit run_item per item  ───────────────────────►    claim the key, run the attempt in a
    subscribe to the run's event topic ◄── output ───     child process, forward its output as
      → OutputListener: prefixed, logged, redacted        worker events, relay its per-call
                                                          key requests to the actor, return
                                                          the AttemptResult
    1st Ctrl+C: no new submissions, wait
    2nd Ctrl+C: set the run's terminate Event (tasks end their attempt and its processes),
      wait for them, cancel the rest, close the local cluster, sweep this run's tag here

Before the run directory exists, `prepare_dask` (dask_cluster.py) checks what the client can: the
`distributed` package, the scheduler (one bounded connection, kept for the run so that DaskRun
does not connect twice), and the environment to forward. Workers do not inherit the client's
environment (they run elsewhere, started by someone else), so the variables an item needs are
sent with the run: every AGENTOS_* setting (AGENTOS_MOCK_LATENCY, AGENTOS_SIMULATE_429, ...)
and what `--env NAME` / `--env PREFIX*` names, GNU parallel's convention. Never sent: keys (they
reach items only leased, through the key actor), AGENTOS_CREDENTIALS, the leased-key variable,
and what agentos sets per attempt itself (AGENTOS_RUN_TAG, AGENTOS_ITEM_ID, AGENTOS_ATTEMPT,
AGENTOS_USAGE_FILE).

The runner, options, journal, summary and exit codes are the loky backend's; only how an
attempt gets to a process differs. A worker lost mid-item is Dask's to handle: the scheduler
runs the task again elsewhere (up to `distributed.scheduler.allowed-failures` times, then
KilledWorker, recorded as a failed attempt), and the new attempt claims the same lease, so no
key is lost. If the worker holding the key actor is lost, the actor is started again on another
worker and told which keys the running items hold (at most MAX_ACTOR_RESTARTS times; then the run
stops like the loky backend does when its key server dies). Cooldowns in force at that moment
are forgotten: the provider will say so again.

`distributed` is an optional dependency: `pip install 'agentos-batch[dask]'`.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

from agentos.engine.attempt import Task
from agentos.engine.backends.dask_cluster import DaskSetup, connect_scheduler, require_distributed
from agentos.engine.backends.dask_worker import (
    ATTEMPT_GRACE,
    POLL,
    Channels,
    ForwardedEnv,
)
from agentos.engine.controller import Controller, Running
from agentos.engine.scheduler import ItemState
from agentos.engine.shutdown import spawn_guard
from agentos.errors import KeyServerLost
from agentos.governor.credentials import KeyConfig, Lease
from agentos.item.keys import KeyOutcome
from agentos.item.process_tree import kill_tagged
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.statuses import Status

if TYPE_CHECKING:
    from agentos.engine.plan import RunPlan
    from agentos.engine.session import Run
    from agentos.governor.governor import KeyStatus

OUTPUT_EOF_WAIT = 10.0
MAX_ACTOR_RESTARTS = 3
#: after the terminate event is set: a task notices it within POLL and gives its attempt
#: ATTEMPT_GRACE; then the futures are cancelled and the attempts recorded as interrupted
TERMINATE_WAIT = POLL + ATTEMPT_GRACE + 2.0

#: the HTTP routes of the local cluster's scheduler and workers: health checks, no dashboard,
#: no worker logs or call stacks, no proxy (distributed serves them unauthenticated)
_HTTP_ROUTES = {
    "distributed.scheduler.http.routes": ["distributed.http.health"],
    "distributed.worker.http.routes": ["distributed.http.health"],
}


class ActorKeys:
    """The governor's `KeyService`, over a Dask actor. Any failure to reach the actor is a
    ConnectionError, which the Batch turns into KeyServerLost."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self.actor, method)(*args).result(timeout=60)
        except Exception as exc:
            raise ConnectionError(f"key actor unreachable: {type(exc).__name__}") from None

    def acquire(self, item_id: str, timeout: float = 0.0, holder_pid: int = 0) -> Lease | None:
        lease: Lease | None = self._call("acquire", item_id, timeout, holder_pid)
        return lease

    def release(
        self,
        lease_id: int,
        outcome: KeyOutcome = KeyOutcome.OK,
        retry_after: float | None = None,
        kind: str = "",
    ) -> float:
        cooldown: float = self._call("release", lease_id, outcome, retry_after, kind)
        return cooldown

    def events(self) -> list[str]:
        found: list[str] = self._call("events")
        return found

    def parked_keys(self) -> dict[str, tuple[float, str]]:
        found: dict[str, tuple[float, str]] = self._call("parked_keys")
        return found

    def reclaim(
        self, item_ids: list[str] | None = None, holder_pid: int | None = None
    ) -> list[str]:
        labels: list[str] = self._call("reclaim", item_ids, holder_pid)
        return labels

    def status(self) -> KeyStatus:
        status: KeyStatus = self._call("status")
        return status

    def snapshot(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = self._call("snapshot")
        return rows


class DaskBackend:
    """`--backend dask`: the cluster (a local one agentos starts, or `--scheduler`) is up for
    the run, the keys served by an actor on one of its workers. `setup` is what `prepare_dask`
    checked and connected before the run directory existed."""

    def __init__(self, setup: DaskSetup) -> None:
        self.setup = setup
        self.client: Any = setup.client
        self.key_configs: list[KeyConfig] = []
        self.base_cooldown = 0.0
        self.actor: Any = None

    @contextlib.contextmanager
    def started(self, plan: RunPlan) -> Iterator[ActorKeys | None]:
        distributed = require_distributed()
        from dask import config as dask_config

        self.key_configs = list(plan.keys.configs)
        self.base_cooldown = plan.options.keys.rate_limit_cooldown
        cluster = None
        try:
            with spawn_guard():  # cluster processes must not die of the terminal's Ctrl+C
                if self.setup.scheduler:
                    if self.client is None:
                        self.client = connect_scheduler(self.setup.scheduler)
                else:
                    # A cluster on TCP that any local user could join (and run code in, and
                    # read the keys from the actor): TLS with a certificate made for this run,
                    # required on every connection, on the loopback interface only. The HTTP
                    # servers beside it, which TLS does not cover, serve health checks only:
                    # no dashboard, worker logs, call stacks or proxies to the workers
                    security = distributed.security.Security.temporary()
                    with dask_config.set(_HTTP_ROUTES):
                        cluster = distributed.LocalCluster(
                            n_workers=plan.workers,
                            threads_per_worker=1,
                            processes=True,
                            dashboard_address=None,
                            silence_logs=40,
                            security=security,
                            host="127.0.0.1",
                        )
                    self.client = distributed.Client(cluster, security=security)
            yield self.start_key_actor() if self.key_configs else None
        finally:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close(timeout=10)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close(timeout=10)
            # A task still ending its attempt when its worker was closed (a stalled machine, a
            # --scheduler cluster that stopped) may have left the attempt or its commands
            # running; on this machine they carry the run's tag, as with loky.
            kill_tagged(plan.run_id)

    def start_key_actor(self) -> ActorKeys:
        from agentos.governor.governor import Governor

        actor = self.client.submit(
            Governor, [], self.base_cooldown, actor=True, pure=False
        ).result()
        # a direct call: no task argument holds keys
        actor.add_keys(self.key_configs).result()
        self.actor = actor
        return ActorKeys(actor)

    def run(self, run: Run) -> None:
        DaskRun(run, self).run()


class DaskRun(Controller):
    def __init__(self, run: Run, backend: DaskBackend) -> None:
        super().__init__(run, capacity=run.plan.workers)
        self.backend = backend
        self.client = backend.client
        self.actor_restarts = 0
        self.topic = f"agentos-output-{self.run_id}"
        self.terminate_name = f"agentos-terminate-{self.run_id}"

    # -- the run
    def run(self) -> None:
        distributed = require_distributed()
        client = self.client
        try:
            with self.batch.signals_to(lambda signum: self.events.put(("signal", signum))):
                self.spec_future = client.scatter(self.spec, broadcast=True)
                self.env_future = client.scatter(
                    ForwardedEnv(self.backend.setup.env), broadcast=True
                )
                self.terminate = distributed.Event(self.terminate_name, client=client)
                client.subscribe_topic(self.topic, self._on_output)
                self.listener.start()
                self.loop()
        finally:
            if self.inflight:
                self._terminate_inflight(client)
            # before the cluster goes: the key actor goes with it
            self.batch.freeze_keys_report()
        self.batch.stop_waiting()
        if self.fatal is not None:
            raise self.fatal

    def _restart_key_actor(self) -> bool:
        """The key actor's worker is gone: a new actor, holding the running items' keys."""
        self.actor_restarts += 1
        try:
            keys = self.backend.start_key_actor()
            for run in self.inflight.values():
                if run.lease is not None:
                    run.lease = self.backend.actor.lease_label(
                        run.lease.label, run.state.id
                    ).result()
        except Exception as exc:
            self.batch.terminal.message(f"cannot restart the key actor: {exc!r}", force=True)
            return False
        self.batch.replace_keys(keys)
        self.batch.terminal.message(
            f"the worker holding the keys was lost; keys restored on another worker "
            f"({self.actor_restarts}/{MAX_ACTOR_RESTARTS})",
            force=True,
        )
        return True

    # -- events from the client's thread
    def _on_output(self, event: Any) -> None:
        _, message = event
        item, attempt = message["i"], message["a"]
        if message.get("start"):
            self.listener.external_start(item, attempt, message.get("p", 0))
        elif message.get("eof"):
            self.listener.external_eof(item, attempt, message["s"])
        else:
            self.listener.external_data(item, attempt, message["s"], message["d"])

    # -- the Controller's hooks
    def submit(self, state: ItemState, attempt: int, lease: Lease | None) -> Any:
        from agentos.engine.backends.dask_worker import run_item

        task = Task(
            state.item,
            attempt,
            lease.lease_id if lease is not None else None,
            self.batch.account.spent_before(state.id),
        )
        return self.client.submit(
            run_item,
            self.spec_future,
            task,
            self.backend.actor,
            self.env_future,
            Channels(self.topic, self.terminate_name),
            pure=False,
            key=f"agentos-{state.id}-{attempt}-{self.run_id}",
        )

    def key_server_lost(self, exc: KeyServerLost) -> bool:
        return self.actor_restarts < MAX_ACTOR_RESTARTS and self._restart_key_actor()

    def finish(self, future: Any) -> None:
        run = self.inflight.pop(future)
        try:
            result: AttemptResult = future.result()
        except CancelledError:
            result = self._synthetic(run, Status.INTERRUPTED, "cancelled")
        except Exception as exc:  # KilledWorker, or a bug surfacing from the task
            result = self._synthetic(
                run, Status.FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0]
            )
        else:
            if not self.listener.wait_closed(run.state.id, run.attempt, OUTPUT_EOF_WAIT):
                self.listener.mark_lost(run.state.id, "its output did not close after it ended")
        self.batch.end_attempt(run.state, run.lease, result)

    def _synthetic(self, run: Running, status: Status, error: str) -> AttemptResult:
        return AttemptResult(
            run.state.id,
            run.attempt,
            status,
            time.time(),
            time.monotonic() - run.submitted,
            exit_code=-1,
            error=error,
            key_label=run.lease.label if run.lease else None,
            reported=False,
        )

    def _terminate_inflight(self, client: Any) -> None:
        """Second signal: tasks see the terminate event and end their attempts (dask_worker's
        end_attempt); whatever does not report within TERMINATE_WAIT is cancelled and recorded
        as interrupted anyway (the local cluster is closed right after, and the run's tag swept).
        Silent: the controller loop says "terminating" before it returns to run()."""
        with contextlib.suppress(Exception):
            self.terminate.set()
        deadline = time.monotonic() + TERMINATE_WAIT
        while self.inflight and time.monotonic() < deadline:
            done = [f for f in self.inflight if f.done()]
            for future in done:
                run = self.inflight.pop(future)
                result = self._interrupted(run, future)
                self.batch.end_attempt(run.state, run.lease, result)
            time.sleep(0.05)
        with contextlib.suppress(Exception):
            client.cancel(list(self.inflight), force=True)
        for run in self.inflight.values():
            self.batch.end_attempt(
                run.state,
                run.lease,
                self._synthetic(run, Status.INTERRUPTED, f"interrupted by {self._signal_name()}"),
            )
        self.inflight.clear()

    def _interrupted(self, run: Running, future: Any) -> AttemptResult:
        with contextlib.suppress(Exception):
            result: AttemptResult = future.result(timeout=0)
            if result.status != Status.INTERRUPTED:
                return result
        return self._synthetic(run, Status.INTERRUPTED, f"interrupted by {self._signal_name()}")

    def _signal_name(self) -> str:
        sig = self.batch.shutdown.first_signal or signal.SIGTERM
        return signal.Signals(sig).name
