"""The Dask backend's code on the workers: the task, and the process each attempt runs in.

    Dask worker thread (run_item)                   attempt process (python -m ...dask_worker)
    -----------------------------                   -----------------------------------------
    claim the key from the key actor (a direct      own session; parent-death signal; reads
      actor call, not a task argument)                (spec, item, attempt, key) from stdin
    start the attempt process, key on its stdin ─►  run_attempt(): the same code as in a loky
    forward its stdout/stderr chunks to the           worker, output on plain fds 1 and 2
      client as worker events (topic per run)
    poll the run's terminate Event: set → end       result pickled to fd 3 at the end
      the attempt (below), sweep its run tag
    return the AttemptResult

The attempt process's environment is the worker's, plus the variables the client forwards
(`ForwardedEnv`: the AGENTOS_* settings and `--env NAME`), minus every way a key could arrive
other than the lease (AGENTOS_CREDENTIALS, the leased-key variable).

Ending an attempt on terminate (`end_attempt`): the item's commands run in sessions of their own
(`ctx.run`), so only the attempt process knows their process groups, and its SIGTERM handler is
what kills them. A SIGKILL that follows the SIGTERM after a fixed short grace races that handler:
on a busy machine the attempt process may not be scheduled before the SIGKILL lands, and then the
item's commands outlive the run (a second Ctrl+C left `sleep 60` running). So the attempt process
gets ATTEMPT_GRACE, more than its handler needs, and whatever it did not end (it was SIGKILLed
before its handler ran, or a daemon left its group) is found by the attempt's run tag and killed
from here, once the attempt process is dead and can start nothing more.

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
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentos.engine.attempt import AttemptSpec, Task, run_attempt
from agentos.engine.shutdown import survive_sigint
from agentos.governor.credentials import CREDENTIALS_ENV
from agentos.item.keys import DEFAULT_CREDENTIAL_ENV
from agentos.item.process import kill_started_processes
from agentos.item.process_tree import (
    RUN_TAG_ENV,
    kill_tagged,
    set_parent_death_signal,
)
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.statuses import Status

if TYPE_CHECKING:
    from agentos.item.keys import CallGrant, KeyOutcome
    from agentos.item.refusal_kinds import RefusalKind

POLL = 0.5  # seconds between checks of the terminate event
#: how long an attempt process may take to end its item's processes after SIGTERM (its handler
#: needs about a second: a group's grace, then a /proc sweep) before it is killed
ATTEMPT_GRACE = 2.0
DRAIN_AFTER_KILL = 1.0  # seconds to keep reading output once the attempt process is gone
_RESULT_FD_ENV = "AGENTOS_RESULT_FD"
_RELAY_FD_ENV = "AGENTOS_GOVERNOR_FD"
_RELAYED = ("acquire_call", "end_call", "confirm_call")


@dataclass(frozen=True)
class ForwardedEnv:
    """Client variables for the items' environment on the workers. Scattered once per run, so
    the values are data on the workers, not part of any task's arguments; the repr names the
    variables only."""

    values: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"ForwardedEnv({sorted(self.values)})"


def attempt_environment(
    base: dict[str, str], forwarded: ForwardedEnv, spec: AttemptSpec
) -> dict[str, str]:
    """The attempt process's environment: the worker's, the client's forwarded variables over
    it (as GNU parallel's --env does), and no key except through the lease."""
    env = dict(base)
    env.update(forwarded.values)
    for name in (CREDENTIALS_ENV, spec.keys.credential_env, DEFAULT_CREDENTIAL_ENV):
        env.pop(name, None)
    if spec.run_id:
        # tagged like a loky worker, so that the client's final sweep finds an attempt process
        # whose worker was closed under it; the attempt re-tags its own children with its pid
        env[RUN_TAG_ENV] = f"{spec.run_id}/{os.getpid()}"
    return env


@dataclass(frozen=True)
class Channels:
    """The run's ways to its client, by name: the event topic output goes to, the Event that
    says terminate."""

    topic: str
    terminate: str


def run_item(
    spec: AttemptSpec,
    task: Task,
    actor: Any,
    forwarded: ForwardedEnv | None,
    channels: Channels,
) -> AttemptResult:
    """The Dask task: one attempt of one item, in its own process."""
    item, attempt, lease_id = task.item, task.attempt, task.lease_id
    topic, terminate_name = channels.topic, channels.terminate
    from distributed import Event, get_worker

    worker = get_worker()
    started = time.time()
    key = label = None
    if lease_id is not None and actor is not None:
        key, label = actor.claim(lease_id, os.getpid()).result()
    result_r, result_w = os.pipe()
    # the attempt process's line to the governor (keys per call): it asks this task, which
    # asks the key actor; the task's client is the only way to the actor on this worker
    relay, relay_child = socket.socketpair()
    env = attempt_environment(dict(os.environ), forwarded or ForwardedEnv(), spec)
    env[_RESULT_FD_ENV] = str(result_w)
    env[_RELAY_FD_ENV] = str(relay_child.fileno())
    child = subprocess.Popen(
        [sys.executable, "-m", "agentos.engine.backends.dask_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(result_w, relay_child.fileno()),
        start_new_session=True,
        env=env,
    )
    os.close(result_w)
    relay_child.close()
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    with contextlib.suppress(BrokenPipeError):
        child.stdin.write(pickle.dumps((spec, task, key, label)))
    child.stdin.close()
    # what the item prints is redacted here, before it leaves the worker: the scheduler keeps
    # every event it relays, and whoever reads its event log must not read keys there
    forward = RedactingForward(
        lambda message: worker.log_event(
            topic, {"i": item.id, "a": attempt, "p": child.pid, **message}
        ),
        [(key, label or "key")] if key else [],
    )
    send = forward.send
    del key

    send({"start": 1})
    terminate = Event(terminate_name)
    interrupted = False
    payload = b""
    result_complete = False
    sel = selectors.DefaultSelector()
    sel.register(child.stdout, selectors.EVENT_READ, 1)
    sel.register(child.stderr, selectors.EVENT_READ, 2)
    sel.register(result_r, selectors.EVENT_READ, 3)
    sel.register(relay, selectors.EVENT_READ, 4)
    next_poll = time.monotonic() + POLL
    drain_until: float | None = None
    try:
        while sel.get_map():
            if drain_until is not None and time.monotonic() >= drain_until:
                break  # something that escaped every kill still holds a pipe: stop reading
            for event_key, _ in sel.select(timeout=POLL):
                stream = event_key.data
                if stream == 4:
                    if not _relay_one(relay, actor, forward):
                        sel.unregister(relay)
                    continue
                chunk = os.read(event_key.fd, 65536)
                if not chunk:
                    sel.unregister(event_key.fileobj)
                    if stream in (1, 2):
                        forward.eof(stream)
                    else:
                        result_complete = True
                elif stream == 3:
                    payload += chunk
                else:
                    forward.data(stream, chunk)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + POLL
                if not interrupted and terminate.is_set():
                    interrupted = True
                    end_attempt(child, spec.run_id)
                    drain_until = time.monotonic() + DRAIN_AFTER_KILL
    except BaseException:
        # the task is failing (the worker is closing, the scheduler is gone): nobody would read
        # the attempt's output or its result, so it must not go on unsupervised
        end_attempt(child, spec.run_id)
        raise
    finally:
        sel.close()
        os.close(result_r)
        relay.close()
        child.wait()
    if not result_complete:
        payload = b""  # cut short: the attempt process died before it wrote its result
    if not payload and not interrupted:
        # it died without a result (the OOM killer, a signal): its handler may not have run
        end_attempt(child, spec.run_id)
    if payload:
        result: AttemptResult = pickle.loads(payload)
        return result
    status = Status.INTERRUPTED if interrupted else Status.FAILED
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


class RedactingForward:
    """An attempt's output on its way to the client as worker events, with every key this
    attempt was given (its lease, the keys of its calls) replaced by its label first. Whole
    lines are redacted, so a key cut in two by a read is still found; a line longer than
    MAX_HELD goes on in pieces that keep back the longest key's length."""

    MAX_HELD = 1024 * 1024

    def __init__(self, send: Callable[[dict[str, Any]], None], keys: list[tuple[str, str]]) -> None:
        self.send = send
        self._keys: dict[bytes, bytes] = {}
        self._longest = 0
        self._held = {1: b"", 2: b""}
        for secret, label in keys:
            self.add_key(secret, label)

    def add_key(self, secret: str, label: str) -> None:
        if secret:
            self._keys[secret.encode()] = f"[{label}]".encode()
            self._longest = max(self._longest, len(secret.encode()))

    def _redact(self, data: bytes) -> bytes:
        for secret in sorted(self._keys, key=len, reverse=True):  # a key inside a longer one
            if secret in data:
                data = data.replace(secret, self._keys[secret])
        return data

    def data(self, stream: int, chunk: bytes) -> None:
        if not self._keys:
            self.send({"s": stream, "d": chunk})
            return
        held = self._held[stream] + chunk
        cut = held.rfind(b"\n") + 1
        if not cut and len(held) > self.MAX_HELD:
            held = self._redact(held)
            cut = len(held) - max(self._longest - 1, 0)
        self._held[stream] = held[cut:]
        if cut:
            self.send({"s": stream, "d": self._redact(held[:cut])})

    def eof(self, stream: int) -> None:
        rest, self._held[stream] = self._held[stream], b""
        if rest:
            self.send({"s": stream, "d": self._redact(rest)})
        self.send({"s": stream, "eof": 1})


def _relay_one(relay: socket.socket, actor: Any, forward: RedactingForward | None = None) -> bool:
    """Answer one governor request of the attempt process; False when it closed its end. The
    actor is never asked to wait: it serves its calls one at a time, and a call waiting there
    for another call's end would wait for itself."""
    try:
        name, args = _receive(relay)
    except (EOFError, OSError, pickle.UnpicklingError):
        return False
    try:
        if name not in _RELAYED or actor is None:
            raise ValueError(f"not relayed: {name}")
        if name == "acquire_call":
            args = (*args[:3], 0.0)
        answer: Any = getattr(actor, name)(*args).result(timeout=60)
        secret = getattr(answer, "secret", None)
        if forward is not None and isinstance(secret, str) and secret:
            forward.add_key(secret, str(getattr(answer, "label", "key")))  # a key per call
    except Exception as exc:  # the actor is gone: the attempt's call fails, the item retries
        answer = ConnectionError(f"key actor unreachable: {type(exc).__name__}")
    with contextlib.suppress(OSError):
        _send(relay, answer)
    return True


def _send(sock: socket.socket, value: Any) -> None:
    data = pickle.dumps(value)
    sock.sendall(struct.pack("!I", len(data)) + data)


def _receive(sock: socket.socket) -> Any:
    head = _exactly(sock, 4)
    return pickle.loads(_exactly(sock, struct.unpack("!I", head)[0]))


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the other end closed")
        data += chunk
    return data


def end_attempt(child: subprocess.Popen[bytes], run_id: str) -> None:
    """SIGTERM the attempt process (its handler kills its item's process groups), SIGKILL it if
    it has not exited within ATTEMPT_GRACE, then kill whatever still carries its run tag. See the
    module docstring for the race this order closes."""
    if child.poll() is None:
        _signal_session(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=ATTEMPT_GRACE)
        except subprocess.TimeoutExpired:
            _signal_session(child.pid, signal.SIGKILL)
            child.wait()
    if run_id:
        # a second round catches what a tagged process forked while the first one killed it
        for _ in range(3):
            if not kill_tagged(run_id, child.pid):
                break


def _signal_session(pid: int, signum: int) -> None:
    """The attempt process leads its own session and group: its helpers go with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


class _AttemptKeys:
    """The keys of an attempt process: the leased key arrived on stdin; keys per call are asked
    of the task, which relays to the key actor (`_relay_one`)."""

    def __init__(self, key: str | None, label: str | None, relay: socket.socket) -> None:
        self._key, self._label, self._relay = key, label, relay

    def claim(self, lease_id: int, holder_pid: int) -> tuple[str, str]:
        assert self._key is not None and self._label is not None
        return self._key, self._label

    def _ask(self, name: str, *args: Any) -> Any:
        _send(self._relay, (name, args))
        answer = _receive(self._relay)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def acquire_call(
        self, item_id: str, tokens: float | None = None, pinned: str | None = None
    ) -> CallGrant:
        grant: CallGrant = self._ask("acquire_call", item_id, tokens, pinned)
        return grant

    def end_call(
        self, call_id: int, outcome: KeyOutcome | RefusalKind, info: dict[str, Any] | None = None
    ) -> str:
        answer: str = self._ask("end_call", call_id, outcome, info)
        return answer

    def confirm_call(self, call_id: int) -> bool:
        answer: bool = self._ask("confirm_call", call_id)
        return answer


def _on_sigterm(signum: int, frame: object) -> None:
    """The Dask worker died or the task terminates us: take the item's processes along."""
    run_id = os.environ.get(RUN_TAG_ENV, "").partition("/")[0]
    with contextlib.suppress(Exception):
        kill_started_processes(run_id, sweep_tag=True)
    os._exit(128 + signum)


def child_main() -> None:
    """An attempt process: run one attempt, write its result to the result fd."""
    survive_sigint()
    signal.signal(signal.SIGTERM, _on_sigterm)
    set_parent_death_signal(signal.SIGTERM, expected_parent=os.getppid())
    for stream in (sys.stdout, sys.stderr):  # pipes: line-buffer so output is live
        with contextlib.suppress(Exception):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    spec, task, key, label = pickle.load(sys.stdin.buffer)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    result_fd = int(os.environ.pop(_RESULT_FD_ENV))
    if spec.run_id:
        os.environ[RUN_TAG_ENV] = f"{spec.run_id}/{os.getpid()}"
    relay = socket.socket(fileno=int(os.environ.pop(_RELAY_FD_ENV)))
    keys = _AttemptKeys(key, label, relay)
    # the leased key came on stdin: the attempt claims it from `keys` under any lease id
    task = task._replace(lease_id=0 if key is not None else None)
    result = run_attempt(spec, task, keys)
    with os.fdopen(result_fd, "wb") as out:
        out.write(pickle.dumps(result))


if __name__ == "__main__":
    child_main()


def sees_markers(markers: list[str], token: str) -> list[bool]:
    """On a worker (`Client.run`): whether each marker file exists here holding `token`, i.e.
    whether this machine sees the folder it is in as the client's does."""
    found = []
    for path in markers:
        try:
            with open(path, encoding="utf-8") as f:
                found.append(f.read() == token)
        except OSError:
            found.append(False)
    return found
