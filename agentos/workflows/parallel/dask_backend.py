"""`--backend dask`: the same batch on a Dask cluster, when one machine is not enough.

    parent (Dask client)                                Dask workers (any machine)
    --------------------                                --------------------------
    LocalCluster of --parallel single-threaded          key actor: a CredentialCoordinator on
      workers, or an existing cluster (--scheduler)       one worker; keys handed to it in a
    Batch: queue, retries, journal, summary,              direct actor call, never in a task
      leases through the actor                          run_item(spec, item, attempt, lease id):
    submit run_item per item  ───────────────────────►    claim the key, run the attempt in a
    subscribe to the run's event topic ◄── output ───     child process, forward its output as
      → OutputListener: prefixed, logged, redacted        worker events, return AttemptResult
    1st Ctrl+C: no new submissions, wait
    2nd Ctrl+C: set the run's terminate Event (tasks kill their attempt's process group),
      cancel futures, close the local cluster

The runner, options, journal, summary and exit codes are the loky backend's; only how an
attempt gets to a process differs. A worker lost mid-item is Dask's to handle: the scheduler
runs the task again elsewhere (up to `distributed.scheduler.allowed-failures` times, then
KilledWorker, recorded as a failed attempt), and the new attempt claims the same lease, so no
key is lost. If the worker holding the key actor is lost, the actor is started again on another
worker and told which keys the running items hold (at most MAX_ACTOR_RESTARTS times; then the run
stops like the loky backend does when its key server dies). Cooldowns in force at that moment
are forgotten: the provider will say so again.

`distributed` is an optional dependency: `pip install 'agentos[dask]'`.
"""

from __future__ import annotations

import contextlib
import signal
import time
from concurrent.futures import CancelledError
from typing import Any

from agentos.errors import ConfigError, KeyServerLost
from agentos.workflows.parallel.attempt import FAILED, INTERRUPTED, AttemptResult, AttemptSpec
from agentos.workflows.parallel.batch import Batch
from agentos.workflows.parallel.controller import Controller, Running
from agentos.workflows.parallel.credentials import Lease
from agentos.workflows.parallel.output import OutputListener
from agentos.workflows.parallel.scheduler import ItemState
from agentos.workflows.parallel.shutdown import spawn_guard

OUTPUT_EOF_WAIT = 10.0
MAX_ACTOR_RESTARTS = 3


def require_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "--backend dask needs the distributed package; install it with: "
            "pip install 'agentos[dask]'"
        ) from None
    return distributed


class ActorKeys:
    """The coordinator interface the Batch expects, over a Dask actor. Any failure to reach the
    actor is a ConnectionError, which the Batch turns into KeyServerLost."""

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
        self, lease_id: int, outcome: str = "ok", retry_after: float | None = None
    ) -> float:
        cooldown: float = self._call("release", lease_id, outcome, retry_after)
        return cooldown

    def reclaim(self, item_ids: list[str] | None = None, holder_pid: int | None = None) -> Any:
        return self._call("reclaim", item_ids, holder_pid)

    def status(self) -> Any:
        return self._call("status")

    def snapshot(self) -> Any:
        return self._call("snapshot")


class DaskRun(Controller):
    def __init__(
        self,
        batch: Batch,
        spec: AttemptSpec,
        workers: int,
        listener: OutputListener,
        run_id: str,
        scheduler: str | None,
        secrets: list[str],
        base_cooldown: float,
    ) -> None:
        super().__init__(batch, capacity=workers)
        self.spec = spec
        self.workers = workers
        self.listener = listener
        self.run_id = run_id
        self.scheduler = scheduler
        self.secrets = secrets
        self.base_cooldown = base_cooldown
        self.actor_restarts = 0
        self.topic = f"agentos-output-{run_id}"
        self.terminate_name = f"agentos-terminate-{run_id}"

    # -- set-up and tear-down
    def run(self) -> None:
        distributed = require_distributed()
        cluster = None
        client = None
        self.batch.on_signal = lambda signum: self.events.put(("signal", signum))
        try:
            with spawn_guard():  # cluster processes must not die of the terminal's Ctrl+C
                if self.scheduler:
                    try:
                        client = distributed.Client(self.scheduler, timeout="10s")
                    except OSError as exc:
                        raise ConfigError(
                            f"cannot reach the Dask scheduler {self.scheduler}: {exc}; start one "
                            "with `dask scheduler` or leave out --scheduler for a local cluster"
                        ) from None
                else:
                    cluster = distributed.LocalCluster(
                        n_workers=self.workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=40,
                    )
                    client = distributed.Client(cluster)
            self.client = client
            if self.secrets:
                self._start_key_actor(client)
            self.spec_future = client.scatter(self.spec, broadcast=True)
            self.terminate = distributed.Event(self.terminate_name, client=client)
            client.subscribe_topic(self.topic, self._on_output)
            self.listener.start()
            self.loop()
        finally:
            self.batch.on_signal = None
            if self.inflight and client is not None:
                self._terminate_inflight(client)
            if self.batch.keys is not None:
                self.batch.frozen_keys_report = self.batch.keys_report()
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close(timeout=10)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close(timeout=10)
        self.batch.stop_waiting()
        if self.fatal is not None:
            raise self.fatal

    def _start_key_actor(self, client: Any) -> None:
        from agentos.workflows.parallel.credentials import CredentialCoordinator

        actor = client.submit(
            CredentialCoordinator, [], self.base_cooldown, actor=True, pure=False
        ).result()
        actor.add_secrets(self.secrets).result()  # a direct call: no task argument holds keys
        self.batch.keys = ActorKeys(actor)
        self.actor = actor

    def _restart_key_actor(self) -> bool:
        """The key actor's worker is gone: a new actor, holding the running items' keys."""
        self.actor_restarts += 1
        try:
            self._start_key_actor(self.client)
            for run in self.inflight.values():
                if run.lease is not None:
                    run.lease = self.actor.lease_label(run.lease.label, run.state.id).result()
        except Exception as exc:
            self.batch.terminal.message(f"cannot restart the key actor: {exc!r}", force=True)
            return False
        self.batch.keys_lost = None
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
        from agentos.workflows.parallel.dask_worker import run_item

        return self.client.submit(
            run_item,
            self.spec_future,
            state.item,
            attempt,
            lease.lease_id if lease is not None else None,
            getattr(self, "actor", None),
            self.topic,
            self.terminate_name,
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
            result = self._synthetic(run, INTERRUPTED, "cancelled")
        except Exception as exc:  # KilledWorker, or a bug surfacing from the task
            result = self._synthetic(run, FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0])
        else:
            self.listener.wait_closed(run.state.id, run.attempt, OUTPUT_EOF_WAIT)
        self.batch.end_attempt(run.state, run.lease, result)

    def _synthetic(self, run: Running, status: str, error: str) -> AttemptResult:
        return AttemptResult(
            run.state.id,
            run.attempt,
            status,
            time.time(),
            time.monotonic() - run.submitted,
            exit_code=-1,
            error=error,
            key_label=run.lease.label if run.lease else None,
        )

    def _terminate_inflight(self, client: Any) -> None:
        """Second signal: tasks see the terminate event and kill their attempt processes; the
        futures are cancelled; whatever does not report within a few seconds is recorded as
        interrupted anyway (the local cluster is closed right after, which kills it)."""
        n = len(self.inflight)
        self.batch.terminal.message(
            f"terminating: killing {n} running item{'s' if n != 1 else ''}", force=True
        )
        with contextlib.suppress(Exception):
            self.terminate.set()
        deadline = time.monotonic() + 3.0
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
                self._synthetic(run, INTERRUPTED, f"interrupted by {self._signal_name()}"),
            )
        self.inflight.clear()

    def _interrupted(self, run: Running, future: Any) -> AttemptResult:
        with contextlib.suppress(Exception):
            result: AttemptResult = future.result(timeout=0)
            if result.status != INTERRUPTED:
                return result
        return self._synthetic(run, INTERRUPTED, f"interrupted by {self._signal_name()}")

    def _signal_name(self) -> str:
        sig = self.batch.shutdown.first_signal or signal.SIGTERM
        return signal.Signals(sig).name
