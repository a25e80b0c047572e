"""The Dask backend's code on the workers: the task, and the process each attempt runs in.

    Dask worker thread (run_item)                   attempt process (python -m ...dask_worker)
    -----------------------------                   -----------------------------------------
    claim the key from the key actor (a direct      own session; parent-death signal; reads
      actor call, not a task argument)                (spec, item, attempt, key) from stdin
    start the attempt process, key on its stdin ─►  run_attempt(): the same code as in a loky
    forward its stdout/stderr chunks to the           worker, output on plain fds 1 and 2
      client as worker events (topic per run)
    poll the run's terminate Event: set → kill      result pickled to fd 3 at the end
      the attempt's session
    return the AttemptResult

Why a process per attempt rather than running the item in the Dask worker's thread: the output
of an item (Python prints and every subprocess) must be captured at the file-descriptor level,
and a Dask worker shares fds 1 and 2 with its own event loop and logging; a child process has fds
of its own. It also gives the attempt a process group to kill on Ctrl+C or timeout without
touching the worker, and a parent-death signal, so a lost worker takes its item down with it.

Imports nothing of the CLI and nothing of distributed until it runs inside a Dask worker.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

from agentos.workflows.items import Item
from agentos.workflows.parallel.attempt import (
    FAILED,
    INTERRUPTED,
    AttemptResult,
    AttemptSpec,
    run_attempt,
)
from agentos.workflows.parallel.context import kill_started_processes
from agentos.workflows.parallel.process_tree import (
    RUN_TAG_ENV,
    set_parent_death_signal,
    terminate_groups,
)

POLL = 0.5  # seconds between checks of the terminate event
_RESULT_FD_ENV = "AGENTOS_RESULT_FD"


def run_item(
    spec: AttemptSpec,
    item: Item,
    attempt: int,
    lease_id: int | None,
    actor: Any,
    topic: str,
    terminate_name: str,
) -> AttemptResult:
    """The Dask task: one attempt of one item, in its own process."""
    from distributed import Event, get_worker

    worker = get_worker()
    started = time.time()
    key = label = None
    if lease_id is not None and actor is not None:
        key, label = actor.claim(lease_id, os.getpid()).result()
    result_r, result_w = os.pipe()
    env = dict(os.environ)
    env[_RESULT_FD_ENV] = str(result_w)
    env.pop("AGENTOS_API_KEY", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "agentos.workflows.parallel.dask_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(result_w,),
        start_new_session=True,
        env=env,
    )
    os.close(result_w)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    with contextlib.suppress(BrokenPipeError):
        child.stdin.write(pickle.dumps((spec, item, attempt, key, label)))
    child.stdin.close()
    del key

    def send(message: dict[str, Any]) -> None:
        worker.log_event(topic, {"i": item.id, "a": attempt, "p": child.pid, **message})

    send({"start": 1})
    terminate = Event(terminate_name)
    interrupted = False
    payload = b""
    sel = selectors.DefaultSelector()
    sel.register(child.stdout, selectors.EVENT_READ, 1)
    sel.register(child.stderr, selectors.EVENT_READ, 2)
    sel.register(result_r, selectors.EVENT_READ, 3)
    next_poll = time.monotonic() + POLL
    try:
        while sel.get_map():
            for event_key, _ in sel.select(timeout=POLL):
                chunk = os.read(event_key.fd, 65536)
                stream = event_key.data
                if not chunk:
                    sel.unregister(event_key.fileobj)
                    if stream in (1, 2):
                        send({"s": stream, "eof": 1})
                elif stream == 3:
                    payload += chunk
                else:
                    send({"s": stream, "d": chunk})
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + POLL
                if not interrupted and terminate.is_set():
                    interrupted = True
                    terminate_groups([child.pid], grace=0.5)
    finally:
        sel.close()
        os.close(result_r)
        child.wait()
    if payload:
        result: AttemptResult = pickle.loads(payload)
        return result
    status = INTERRUPTED if interrupted else FAILED
    how = f"signal {-child.returncode}" if child.returncode < 0 else f"exit {child.returncode}"
    return AttemptResult(
        item.id,
        attempt,
        status,
        started,
        time.time() - started,
        exit_code=-1,
        signal=max(0, -child.returncode),
        error="interrupted" if interrupted else f"item process died ({how})",
        key_label=label,
        worker_pid=child.pid,
    )


class _GivenKey:
    """The KeyClaimer of an attempt process: the key arrived on stdin."""

    def __init__(self, key: str, label: str) -> None:
        self._key, self._label = key, label

    def claim(self, lease_id: int, holder_pid: int) -> tuple[str, str]:
        return self._key, self._label


def _on_sigterm(signum: int, frame: object) -> None:
    """The Dask worker died or the task terminates us: take the item's processes along."""
    run_id = os.environ.get(RUN_TAG_ENV, "").partition("/")[0]
    with contextlib.suppress(Exception):
        kill_started_processes(run_id, sweep_tag=True)
    os._exit(128 + signum)


def child_main() -> None:
    """An attempt process: run one attempt, write its result to the result fd."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    set_parent_death_signal(signal.SIGTERM, expected_parent=os.getppid())
    for stream in (sys.stdout, sys.stderr):  # pipes: line-buffer so output is live
        with contextlib.suppress(Exception):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    spec, item, attempt, key, label = pickle.load(sys.stdin.buffer)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    result_fd = int(os.environ.pop(_RESULT_FD_ENV))
    if spec.run_id:
        os.environ[RUN_TAG_ENV] = f"{spec.run_id}/{os.getpid()}"
    keys = _GivenKey(key, label) if key is not None else None
    result = run_attempt(spec, item, attempt, 0 if keys else None, keys, None)
    with os.fdopen(result_fd, "wb") as out:
        out.write(pickle.dumps(result))


if __name__ == "__main__":
    child_main()
