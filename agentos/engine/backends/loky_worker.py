"""Code that runs inside a loky worker: the initializer and the task function.

The initializer runs once per worker, before its first task:

* SIGINT → caught and dropped (`survive_sigint`: not ignored, or the items' commands would
  inherit the ignoring). The parent blocked SIGINT while spawning, so the terminal's Ctrl+C could
  not kill us before this line; one pending is dropped when we unblock.
* Own process group, so a later Ctrl+C (sent to the terminal's foreground group) never reaches us,
  and the parent can `killpg` us with everything we started.
* Parent-death signal SIGTERM, and a SIGTERM handler that kills the current item's process groups
  before exiting: if the parent is SIGKILLed, nothing the item started survives either.
* stdin → /dev/null; stdout line-buffered (we only redirect fds, never replace `sys.stdout`).
* The key server proxy arrives here, once (never as a task argument: loky issue #407).

Imports nothing of the CLI.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import NamedTuple

from agentos.engine.attempt import AttemptSpec, Task, run_attempt
from agentos.engine.output.capture import ItemCapture, OutputChannel
from agentos.engine.shutdown import survive_sigint
from agentos.item.keys import AttemptKeyService
from agentos.item.process import kill_started_processes
from agentos.item.process_tree import (
    RUN_TAG_ENV,
    set_parent_death_signal,
)
from agentos.item.workflow import Item
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.statuses import Status


class _WorkerState(NamedTuple):
    """What a worker keeps from its initializer for every attempt it runs."""

    spec: AttemptSpec
    keys: AttemptKeyService | None  # the Governor's Manager proxy
    channel: OutputChannel  # to the parent's output listener; connects on the first item


_STATE: _WorkerState | None = None


def _on_sigterm(signum: int, frame: object) -> None:
    """Terminate (or the parent died): take the item's processes down with us: its registered
    process groups, and whatever carries this worker's run tag (a command forked an instant before
    the signal may not be registered yet, and a daemon may have left its group)."""
    with contextlib.suppress(Exception):
        kill_started_processes(_STATE.spec.run_id if _STATE else "", sweep_tag=True)
    os._exit(128 + signum)


def initialize_worker(
    parent_pid: int,
    run_id: str,
    spec: AttemptSpec,
    keys: AttemptKeyService | None,
    listener_address: str,
    listener_token: str,
) -> None:
    global _STATE
    survive_sigint()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    set_parent_death_signal(signal.SIGTERM, expected_parent=parent_pid)
    # everything the items start carries the run tag (see process_tree.py)
    os.environ[RUN_TAG_ENV] = f"{run_id}/{os.getpid()}"
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if sys.stdout is not None and hasattr(sys.stdout, "reconfigure"):
        with contextlib.suppress(Exception):
            sys.stdout.reconfigure(line_buffering=True)
    _STATE = _WorkerState(spec, keys, OutputChannel(listener_address, listener_token))


def _capture(item: Item, attempt: int) -> ItemCapture:
    assert _STATE is not None
    return ItemCapture(_STATE.channel, item.id, attempt)


def execute_in_worker(task: Task) -> AttemptResult:
    """The loky task. Its argument is small: the item record, its attempt number, a lease id,
    what the item's earlier attempts spent (for its caps)."""
    if _STATE is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("worker used before initialize_worker ran")
    flag = _STATE.spec.drain_flag
    if flag and os.path.lexists(flag):
        return AttemptResult(
            task.item.id, task.attempt, Status.NOT_STARTED, time.time(), 0.0, worker_pid=os.getpid()
        )
    return run_attempt(_STATE.spec, task, _STATE.keys, _capture)
