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

Before the run directory exists, `prepare_dask` checks what can be checked from the client: the
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
import fnmatch
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.engine.attempt import AttemptResult
from agentos.engine.backends.dask_worker import ATTEMPT_GRACE, POLL, ForwardedEnv, sees_markers
from agentos.engine.controller import Controller, ExecutorPlan, Running
from agentos.engine.scheduler import ItemState
from agentos.engine.shutdown import spawn_guard
from agentos.errors import ConfigError, KeyServerLost, UsageError
from agentos.governor.credentials import (
    CREDENTIALS_ENV,
    NOTIFY_ENV,
    Credential,
    KeyConfig,
    Lease,
)
from agentos.item.keys import KeyOutcome
from agentos.item.process_tree import RUN_TAG_ENV, kill_tagged
from agentos.rundir.statuses import Status
from agentos.text import plural

if TYPE_CHECKING:
    from agentos.governor.governor import KeyStatus
    from agentos.run.options import RunnerOptions

OUTPUT_EOF_WAIT = 10.0
MAX_ACTOR_RESTARTS = 3
CONNECT_TIMEOUT = 5.0  # seconds: an unreachable --scheduler is an error, not a hang
#: after the terminate event is set: a task notices it within POLL and gives its attempt
#: ATTEMPT_GRACE; then the futures are cancelled and the attempts recorded as interrupted
TERMINATE_WAIT = POLL + ATTEMPT_GRACE + 2.0

#: forwarded to items on workers whatever --env says: the settings agentos's own agents read
DEFAULT_FORWARD = ("AGENTOS_*",)
#: never forwarded, even when named: keys arrive only leased, and the rest agentos sets per attempt
NEVER_FORWARD = frozenset(
    {
        CREDENTIALS_ENV,
        NOTIFY_ENV,
        "AGENTOS_API_KEY",
        RUN_TAG_ENV,
        "AGENTOS_ITEM_ID",
        "AGENTOS_ATTEMPT",
        "AGENTOS_RESULT_FD",
        "AGENTOS_USAGE_FILE",
    }
)


#: the HTTP routes of the local cluster's scheduler and workers: health checks, no dashboard,
#: no worker logs or call stacks, no proxy (distributed serves them unauthenticated)
_HTTP_ROUTES = {
    "distributed.scheduler.http.routes": ["distributed.http.health"],
    "distributed.worker.http.routes": ["distributed.http.health"],
}


def require_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "--backend dask needs the distributed package; install it with: "
            "pip install 'agentos-batch[dask]'"
        ) from None
    return distributed


def forwarded_environment(
    names: Iterable[str],
    environ: Mapping[str, str],
    credentials: list[Credential],
    credential_env: str,
    warn: Callable[[str], None],
) -> dict[str, str]:
    """The client variables items on the workers get: DEFAULT_FORWARD and each `--env` NAME or
    PREFIX*, minus NEVER_FORWARD. A value that holds a configured key is refused (UsageError):
    it would put the key in every item's environment, beside the lease."""
    never = NEVER_FORWARD | {credential_env}
    # variable -> (why it is forwarded, what to do instead), for the error message
    chosen: dict[str, tuple[str, str]] = {}
    for pattern in DEFAULT_FORWARD:
        for name in fnmatch.filter(environ, pattern):
            chosen[name] = (f"{name} (AGENTOS_* settings go to the workers)", "unset it")
    for pattern in names:
        if pattern.endswith("*"):
            matched = [n for n in fnmatch.filter(environ, pattern) if n not in never]
            if not matched:
                warn(f"--env {pattern}: no variable here matches; nothing forwarded for it")
            for name in matched:
                chosen[name] = (f"--env {pattern} ({name})", "do not forward it")
        elif pattern in never:
            raise UsageError(
                f"--env {pattern}: agentos never forwards {pattern}; keys reach items only "
                f"leased, through the key coordinator (as ${credential_env}), and the run's own "
                "variables are set on the workers"
            )
        elif pattern not in environ:
            warn(f"--env {pattern} is not set here; nothing forwarded for it")
        else:
            chosen[pattern] = (f"--env {pattern}", "do not forward it")
    forwarded = {name: environ[name] for name in chosen if name not in never}
    for name, value in forwarded.items():
        for credential in credentials:
            if credential.secret and credential.secret in value:
                why, remedy = chosen[name]
                raise UsageError(
                    f"{why} holds a configured API key ({credential.label}); keys reach items "
                    f"only leased, through the key coordinator (as ${credential_env}): {remedy}"
                )
    return forwarded


def connect_scheduler(address: str) -> Any:
    """A client of `--scheduler`, or one line that says what to fix (exit 2)."""
    distributed = require_distributed()
    try:
        return distributed.Client(address, timeout=f"{CONNECT_TIMEOUT:g}s")
    except ValueError as exc:  # not an address at all: no port, an unknown scheme
        raise UsageError(
            f"--scheduler {address!r} is not a Dask scheduler address ({exc}); "
            "give it as tcp://host:8786"
        ) from None
    except OSError:
        raise ConfigError(
            f"cannot reach the Dask scheduler {address} (no answer within "
            f"{CONNECT_TIMEOUT:g} s); start it or check --scheduler"
        ) from None


@dataclass
class DaskSetup:
    """What `prepare_dask` checked and made before the run directory existed, for DaskRun."""

    scheduler: str | None
    client: Any = None  # connected to `scheduler`; None for a local cluster, made by DaskRun
    env: dict[str, str] = field(default_factory=dict)


def prepare_dask(
    options: RunnerOptions, credentials: list[Credential], warn: Callable[[str], None]
) -> DaskSetup:
    """The checks of a Dask run that need no run directory: a user mistake here must leave
    nothing behind (no run directory, no summary of items that never had a chance)."""
    require_distributed()
    if not options.scheduler:
        try:  # Security.temporary() makes the local cluster's certificate with it
            import cryptography  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--backend dask secures its local cluster with TLS, which needs the "
                "cryptography package; install it with: pip install 'agentos-batch[dask]'"
            ) from None
    elif credentials and not options.scheduler.startswith("tls://"):
        warn(
            f"--scheduler {options.scheduler} is not a tls:// address: the keys travel to the "
            "key actor on a worker unencrypted, and anyone who can reach the scheduler can run "
            "code on its workers; see the README's Security section"
        )
    env = forwarded_environment(
        options.forward_env, os.environ, credentials, options.credential_env, warn
    )
    client = connect_scheduler(options.scheduler) if options.scheduler else None
    return DaskSetup(options.scheduler, client, env)


def check_shared_folders(client: Any, folders: list[Path]) -> None:
    """Every worker of `--scheduler` must see `folders` (the workspace an item writes into: an
    LLD, a git worktree) at the same path as this machine, or its items would write elsewhere or
    fail one by one: a marker file written here must be read there. A ConfigError (exit 2)
    names the workers that do not, before any item runs."""
    token = os.urandom(8).hex()
    markers: list[Path] = []
    try:
        for folder in folders:
            own = folder / ".agentos"
            own.mkdir(exist_ok=True)
            if own.is_symlink():
                raise ConfigError(f"{own} is a symlink; agentos will not write through it")
            marker = own / f".shared-check-{token}"
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(token)
            markers.append(marker)
        try:
            seen: dict[str, list[bool]] = client.run(sees_markers, [str(m) for m in markers], token)
        except Exception as exc:
            raise ConfigError(
                f"cannot ask the Dask workers whether they see {folders[0]}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
    finally:
        for marker in markers:
            with contextlib.suppress(OSError):
                marker.unlink()
    blind = sorted(worker for worker, found in seen.items() if not all(found))
    if blind:
        raise ConfigError(
            f"{plural(len(blind), 'Dask worker')} ({', '.join(blind[:3])}) "
            f"cannot see {', '.join(map(str, folders))} at that path: items there would work on "
            "another copy or fail; mount it at the same path on every worker (a shared "
            "filesystem), or run with --backend loky"
        )


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


class DaskRun(Controller):
    def __init__(
        self, plan: ExecutorPlan, setup: DaskSetup, keys: list[KeyConfig], base_cooldown: float
    ) -> None:
        super().__init__(plan.batch, capacity=plan.workers)
        self.spec = plan.spec
        self.workers = plan.workers
        self.listener = plan.listener
        self.run_id = plan.run_id
        self.setup = setup
        self.scheduler = setup.scheduler
        self.key_configs = keys
        self.base_cooldown = base_cooldown
        self.actor_restarts = 0
        self.topic = f"agentos-output-{plan.run_id}"
        self.terminate_name = f"agentos-terminate-{plan.run_id}"

    # -- set-up and tear-down
    def run(self) -> None:
        distributed = require_distributed()
        from dask import config as dask_config

        setup = self.setup
        cluster = None
        client = setup.client
        self.batch.on_signal = lambda signum: self.events.put(("signal", signum))
        try:
            with spawn_guard():  # cluster processes must not die of the terminal's Ctrl+C
                if self.scheduler:
                    if client is None:
                        client = connect_scheduler(self.scheduler)
                else:
                    # A cluster on TCP that any local user could join (and run code in, and
                    # read the keys from the actor): TLS with a certificate made for this run,
                    # required on every connection, on the loopback interface only. The HTTP
                    # servers beside it, which TLS does not cover, serve health checks only:
                    # no dashboard, worker logs, call stacks or proxies to the workers
                    security = distributed.security.Security.temporary()
                    with dask_config.set(_HTTP_ROUTES):
                        cluster = distributed.LocalCluster(
                            n_workers=self.workers,
                            threads_per_worker=1,
                            processes=True,
                            dashboard_address=None,
                            silence_logs=40,
                            security=security,
                            host="127.0.0.1",
                        )
                    client = distributed.Client(cluster, security=security)
            self.client = client
            if self.key_configs:
                self._start_key_actor(client)
            self.spec_future = client.scatter(self.spec, broadcast=True)
            self.env_future = client.scatter(ForwardedEnv(setup.env), broadcast=True)
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
            # A task still ending its attempt when its worker was closed (a stalled machine, a
            # --scheduler cluster that stopped) may have left the attempt or its commands
            # running; on this machine they carry the run's tag, as with loky.
            if self.run_id:
                kill_tagged(self.run_id)
        self.batch.stop_waiting()
        if self.fatal is not None:
            raise self.fatal

    def _start_key_actor(self, client: Any) -> None:
        from agentos.governor.governor import Governor

        actor = client.submit(Governor, [], self.base_cooldown, actor=True, pure=False).result()
        # a direct call: no task argument holds keys
        actor.add_keys(list(self.key_configs)).result()
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
        from agentos.engine.backends.dask_worker import run_item

        return self.client.submit(
            run_item,
            self.spec_future,
            state.item,
            attempt,
            lease.lease_id if lease is not None else None,
            getattr(self, "actor", None),
            self.topic,
            self.terminate_name,
            self.env_future,
            self.batch.account.spent_before(state.id),
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
