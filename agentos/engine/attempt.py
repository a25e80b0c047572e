"""One attempt of one item: claim the key, capture output, enforce the deadline, classify the end.

The same function runs inside a loky worker (parallel mode) and in the parent's main thread
(sequential mode), so an item behaves the same either way. It never raises for anything the item
does: every ending becomes an `AttemptResult` with one of the statuses

    done | failed | rate_limited | rejected | timeout | interrupted

and the runner, not the attempt, decides what happens next (retry, cooldown, stop).

The deadline is a SIGALRM timer whose handler raises `ItemTimeout` in the item's own thread (items
run in the main thread of their process in both modes); `ctx.run` kills the command's process group
on the way out, and the attempt kills any group still registered, so a timed-out item leaves
nothing.

Runs inside workers: imports nothing of the CLI.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple

from agentos.engine.options import AttemptOptions, KeyOptions
from agentos.errors import (
    CredentialRejected,
    Interrupted,
    ItemError,
    ItemTimeout,
    RateLimited,
)
from agentos.item.context import AttemptSetup, ItemContext
from agentos.item.keys import AttemptKeys, AttemptKeyService
from agentos.item.process import CommandPolicy, kill_started_processes
from agentos.item.workflow import ExecuteItem, Item
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.statuses import Status
from agentos.usage.budget import ItemLimits
from agentos.usage.meter import Spending
from agentos.usage.prices import PriceBook
from agentos.usage.record import Tally


class AttemptSpec(NamedTuple):
    """Everything an attempt needs that is the same for the whole run. Sent to each worker once,
    through the loky initializer (or scattered to the Dask workers)."""

    run_dir: str
    execute_item: ExecuteItem
    config: Any
    attempts: AttemptOptions = AttemptOptions()  # frozen: one default serves every spec
    keys: KeyOptions = KeyOptions()
    parallel: bool = False
    run_id: str = ""  # tags every process the items start (process_tree.RUN_TAG_ENV)
    #: keys per call (HTTP agents ask the governor for each call) rather than per item
    call_keys: bool = False
    #: what calls cost (--prices over the genai-prices database) and the item caps
    prices: PriceBook | None = None
    limits: ItemLimits | None = None

    @property
    def timeout(self) -> float | None:
        return self.attempts.timeout

    @property
    def drain_flag(self) -> str:
        """A file that exists once a parallel run drains: attempts queued in a worker must not
        start then."""
        return f"{self.run_dir}/.draining" if self.parallel else ""


class Task(NamedTuple):
    """One attempt to run: the item, the attempt's number, the key lease it holds (keys per
    item), and what the item's earlier attempts spent (its caps are the item's)."""

    item: Item
    attempt: int
    lease_id: int | None = None
    spent_before: Tally | None = None


CaptureFactory = Callable[[Item, int], AbstractContextManager[Any]]


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise ItemTimeout in this (main) thread after `seconds`."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise ItemTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_attempt(
    spec: AttemptSpec,
    task: Task,
    keys: AttemptKeyService | None = None,
    capture: CaptureFactory | None = None,
    around_item: Callable[[], AbstractContextManager[Any]] | None = None,
) -> AttemptResult:
    """Run `task` (see the module docstring); `around_item` wraps the item's own code."""
    item, attempt, lease_id = task.item, task.attempt, task.lease_id
    started = time.time()
    t0 = time.monotonic()
    pid = os.getpid()
    result = AttemptResult(item.id, attempt, Status.DONE, started, 0.0, worker_pid=pid)
    key: str | None = None
    ctx: ItemContext | None = None
    try:
        if lease_id is not None and keys is not None:
            key, result.key_label = keys.claim(lease_id, pid)
        ctx = ItemContext(
            item,
            attempt,
            Path(spec.run_dir),
            spec.config,
            AttemptKeys(
                key,
                result.key_label,
                spec.keys.credential_env,
                governor=keys
                if (spec.call_keys or key) and hasattr(keys, "acquire_call")
                else None,
                max_key_wait=spec.keys.max_key_wait,
            ),
            AttemptSetup(
                CommandPolicy(spec.keys.rate_limit_pattern, spec.attempts.item_memory),
                Spending(
                    spec.prices or PriceBook(), spec.limits or ItemLimits(), task.spent_before
                ),
                deadline=t0 + spec.timeout if spec.timeout else None,
                run_tag=f"{spec.run_id}/{pid}" if spec.run_id else "",
                parallel=spec.parallel,
            ),
        )
        with (
            capture(item, attempt) if capture is not None else contextlib.nullcontext(),
            _kill_leftovers(spec, result),
        ):
            _execute(spec, item, ctx, result, around_item)
        if ctx.last_argv is not None:
            result.command = ctx.describe_argv(ctx.last_argv)
        if ctx.last_command is not None and (
            result.status != Status.DONE or ctx.last_command.returncode != 0
        ):
            result.exit_code = result.exit_code or ctx.last_command.returncode
        result.waits = dict(ctx.waits) or None
        result.detail = ctx.detail if result.status == Status.DONE else ""
        result.outputs = {k: ctx.redact(str(v)) for k, v in ctx.outputs.items()} or None
    except Interrupted as exc:
        _set(result, Status.INTERRUPTED, "interrupted", exit_code=-1, sig=exc.signum)
    except Exception as exc:  # the claim or the capture failed: infrastructure, not the item
        _set(result, Status.FAILED, f"could not start the item: {exc}")
    if ctx is not None:
        # a command that outlived its `ctx.run` (a daemon) may have reported after it
        with contextlib.suppress(Exception):
            ctx.collect_usage_file()
            ctx.scrub_usage_file()
        ctx.close_calls()
        result.usage = ctx.usage if ctx.usage else None
    result.runtime = time.monotonic() - t0
    # the error may quote an answer or an environment: every key the attempt saw goes
    if ctx is not None:
        result.error = ctx.redact(result.error)
    elif key:
        result.error = result.error.replace(key, f"[{result.key_label}]")
    return result


def _execute(
    spec: AttemptSpec,
    item: Item,
    ctx: ItemContext,
    result: AttemptResult,
    around_item: Callable[[], AbstractContextManager[Any]] | None,
) -> None:
    guard = around_item() if around_item is not None else contextlib.nullcontext()
    try:
        with deadline(spec.timeout), guard:
            spec.execute_item(item, ctx)
    except RateLimited as exc:
        _set(result, Status.RATE_LIMITED, str(exc) or "rate limited", exit_code=75)
        result.retry_after = exc.retry_after
        result.refusal = exc.kind
    except CredentialRejected as exc:
        _set(result, Status.REJECTED, str(exc) or "credential rejected")
    except ItemTimeout as exc:
        _set(result, Status.TIMEOUT, str(exc), exit_code=-1, sig=signal.SIGTERM)
    except ItemError as exc:
        _set(result, Status.FAILED, str(exc), exit_code=exc.exit_code, sig=exc.signal)
        result.retry = getattr(exc, "retry", True)
    except Interrupted as exc:
        _set(result, Status.INTERRUPTED, "interrupted", exit_code=-1, sig=exc.signum)
    except SystemExit as exc:
        # sys.exit() in item code must end the item, not the worker (which would break the pool)
        code = exc.code if isinstance(exc.code, int) else 1
        _set(
            result,
            Status.DONE if code == 0 else Status.FAILED,
            "" if code == 0 else f"the item called sys.exit({exc.code!r})",
            exit_code=code,
        )
    except (Exception, KeyboardInterrupt) as exc:
        traceback.print_exc()
        _set(result, Status.FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0][:500])


def _set(
    result: AttemptResult, status: Status, error: str, *, exit_code: int = 1, sig: int = 0
) -> None:
    result.status = status
    result.error = error
    result.exit_code = exit_code
    result.signal = sig


@contextlib.contextmanager
def _kill_leftovers(spec: AttemptSpec, result: AttemptResult) -> Iterator[None]:
    """After the item, its processes go; after a timeout or an interrupt, which can strike
    between a fork and the group's registration, the run-tag sweep too."""
    try:
        yield
    finally:
        abnormal = result.status in (Status.TIMEOUT, Status.INTERRUPTED)
        kill_started_processes(spec.run_id, sweep_tag=abnormal, grace=0.3)
