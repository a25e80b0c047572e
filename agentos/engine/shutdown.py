"""Two-stage shutdown on SIGINT and SIGTERM.

    running ──1st signal──► draining ──2nd signal, or --grace elapsed──► terminating
                           no new item starts;      kill every worker and everything it started
                           running items finish     (SIGTERM, short wait, SIGKILL); mark those
                                                    items `interrupted`
    exit code: 130 if the first signal was SIGINT, 143 if it was SIGTERM.

Why the handlers only record what happened:

A Python signal handler runs in the main thread between two bytecodes, wherever that thread is:
possibly inside `executor.submit()`, which holds loky's locks, or inside a `queue.Queue` method that
holds its mutex. Calling `executor.shutdown()` or `Queue.put()` from the handler can then deadlock
on a lock the interrupted code already holds. So in parallel mode the handler only flips the state
and pokes the controller through a `queue.SimpleQueue` (its `put` is documented as safe from signal
handlers); the controller loop does the actual work.

Sequential mode is the exception: the item itself runs in the main thread, so nothing else could
notice the flag. There the second signal raises `Interrupted` (a BaseException, like
KeyboardInterrupt) into the item, and `ctx.run` kills the command's process group on its way out.
The grace period is enforced by a timer thread that sends SIGINT to the main thread, which is the
only way to interrupt a blocking system call there.

Workers never see these signals: they run in their own process groups and drop a SIGINT (see
`backends/loky_worker.py` and `survive_sigint`), and the parent blocks SIGINT while it spawns them
(`spawn_guard`), because the interpreter would otherwise install its default KeyboardInterrupt
handler in the child before our initializer runs.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from agentos.errors import EXIT_SIGINT, EXIT_SIGTERM
from agentos.rundir.statuses import Phase


class ShutdownState:
    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.phase = Phase.RUNNING
        self.first_signal: int | None = None
        self.drain_started: float | None = None
        self.announced = Phase.RUNNING  # the phase the user has been told about

    @property
    def draining(self) -> bool:
        return self.phase != Phase.RUNNING

    @property
    def terminating(self) -> bool:
        return self.phase == Phase.TERMINATING

    def request(self, signum: int) -> None:
        """Record one signal: the first drains, the next terminates."""
        if self.phase == Phase.RUNNING:
            self.phase = Phase.DRAINING
            self.first_signal = signum
            self.drain_started = time.monotonic()
        else:
            self.phase = Phase.TERMINATING

    def grace_expired(self, now: float | None = None) -> bool:
        if self.phase != Phase.DRAINING or self.drain_started is None:
            return False
        return (now if now is not None else time.monotonic()) - self.drain_started >= self.grace

    def grace_left(self) -> float | None:
        if self.phase != Phase.DRAINING or self.drain_started is None:
            return None
        return max(0.0, self.drain_started + self.grace - time.monotonic())

    def terminate_now(self) -> None:
        self.phase = Phase.TERMINATING

    @property
    def exit_code(self) -> int | None:
        if self.first_signal is None:
            return None
        return EXIT_SIGTERM if self.first_signal == signal.SIGTERM else EXIT_SIGINT

    def signal_name(self) -> str:
        return "SIGTERM" if self.first_signal == signal.SIGTERM else "SIGINT"


class EarlyInterrupt:
    """The SIGINT handler from the first line of `agentos` until a command installs its own.

    It raises KeyboardInterrupt, as Python's default handler does, so that a Ctrl+C while modules
    load ends the program at once (exit 130, see `agentos.__main__`). It also remembers the
    signal: a KeyboardInterrupt raised inside a weakref callback or a `__del__` method (the import
    system runs some) is printed as "Exception ignored" and dropped, and the program would then
    go on to run the whole batch the user asked to stop (seen in CI). `handle_signals` and the
    CLI's exit path look at `received`; the "Exception ignored" traceback is not printed, since
    the interrupt is not ignored after all."""

    def __init__(self) -> None:
        self.received = False
        self._next_hook = sys.unraisablehook

    def _unraisable(self, info: Any) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt) and self.received:
            return
        self._next_hook(info)

    def __call__(self, signum: int, frame: object) -> None:
        self.received = True
        raise KeyboardInterrupt

    @classmethod
    def install(cls) -> None:
        """Replace Python's default SIGINT handler; leave an ignored SIGINT (a background job)
        or anyone else's handler alone."""
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            early = cls()
            signal.signal(signal.SIGINT, early)
            sys.unraisablehook = early._unraisable

    @staticmethod
    def was_received() -> bool:
        current = signal.getsignal(signal.SIGINT)
        return isinstance(current, EarlyInterrupt) and current.received


_RUN = {"began": False}


def mark_run_began() -> None:
    """The run's handlers are in: from now on a Ctrl+C stops the run, which says what it did."""
    _RUN["began"] = True


def run_began() -> bool:
    """Did this process begin a run (a Ctrl+C before that stopped nothing that was started)?"""
    return _RUN["began"]


@contextlib.contextmanager
def handle_signals(
    state: ShutdownState,
    *,
    on_signal: Callable[[int], None] | None = None,
) -> Iterator[ShutdownState]:
    """Install SIGINT and SIGTERM handlers for the duration of the block; restore the previous
    ones after. Only callable from the main thread.

    A signal that was ignored when we started stays ignored: shells start background jobs
    (`agentos run ... &` in a script) with SIGINT ignored so that the terminal's Ctrl+C does not
    reach them, and `nohup`-style wrappers do the same for SIGTERM."""

    taken_early: set[int] = set()

    def record(signum: int) -> None:
        state.request(signum)
        if on_signal is not None:
            on_signal(signum)

    def handler(signum: int, frame: object) -> None:
        if signum in taken_early:  # already counted while it was held back
            taken_early.discard(signum)
            return
        # spawn_guard holds SIGINT back while workers are forked; a SIGTERM arriving meanwhile
        # is handled at once. A SIGINT still pending now was sent first: count it first, so
        # that the first signal decides the exit code, as it does outside the guard.
        if (
            signum != signal.SIGINT
            and signal.getsignal(signal.SIGINT) is handler
            and signal.SIGINT in signal.sigpending()
        ):
            taken_early.add(signal.SIGINT)
            record(signal.SIGINT)
        record(signum)

    previous = {
        sig: signal.signal(sig, handler)
        for sig in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    early = previous.get(signal.SIGINT)
    if isinstance(early, EarlyInterrupt) and early.received:
        record(signal.SIGINT)  # a Ctrl+C whose KeyboardInterrupt was dropped on the way here
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def survive_sigint() -> None:
    """For worker processes: a SIGINT neither kills this process nor reaches what it starts.

    Not SIG_IGN: an ignored signal stays ignored across exec, so every command an item started
    would ignore SIGINT too (a `timeout -s INT` in it would time nothing out, a Python script in
    it would never see KeyboardInterrupt), while the same item run sequentially would not. A
    caught signal is reset to the default by exec. A SIGINT pending from the parent's blocked
    spawn is delivered here, to a handler that does nothing."""
    signal.signal(signal.SIGINT, _swallow_sigint)


def _swallow_sigint(signum: int, frame: object) -> None:
    return None


@contextlib.contextmanager
def spawn_guard(*, trackers: Literal["all", "stdlib", "none"] = "all") -> Iterator[None]:
    """Block SIGINT in this thread while processes are spawned from it.

    Children inherit the signal mask through fork and exec, so they start with SIGINT blocked
    until their initializer ignores and unblocks it. Threads created meanwhile (loky's executor
    manager thread, which respawns workers) inherit the mask too, which is what we want. A SIGINT
    that arrives meanwhile stays pending for the parent and is handled right after.

    The resource trackers of multiprocessing and loky are started first, outside the block: the
    stdlib's spawner *unblocks* SIGINT after starting its tracker (SIG_UNBLOCK rather than restoring
    the previous mask), which would silently end the guard for the workers spawned after it.
    Each tracker is a fresh interpreter (loky's imports loky): ~0.15 s of CPU for both, which a
    small run waits for on a 2-core machine. So only the ones the spawn needs: "none" for plain
    forks (loky's "fork" start), "stdlib" for a multiprocessing spawn (the key server)."""
    if trackers != "none":
        _start_resource_trackers(loky=trackers == "all")
    for stream in (sys.stdout, sys.stderr):  # a forked child must not print our buffer again
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_TRACKERS_STARTED: set[str] = set()


def _start_resource_trackers(*, loky: bool) -> None:
    """Once per process each: `ensure_running()` talks to the tracker on every call."""
    if "stdlib" not in _TRACKERS_STARTED:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        _TRACKERS_STARTED.add("stdlib")
    if loky and "loky" not in _TRACKERS_STARTED:
        from loky.backend import resource_tracker as loky_tracker

        loky_tracker.ensure_running()
        _TRACKERS_STARTED.add("loky")


class GraceTimer:
    """Sequential mode: after `grace` seconds of draining, interrupt the main thread."""

    def __init__(self, state: ShutdownState) -> None:
        self._state = state
        self._timer: threading.Timer | None = None

    def start_if_draining(self) -> None:
        if self._timer is not None or self._state.phase != Phase.DRAINING:
            return
        main_ident = threading.main_thread().ident

        def fire() -> None:
            if self._state.phase == Phase.DRAINING and main_ident is not None:
                signal.pthread_kill(main_ident, signal.SIGINT)

        self._timer = threading.Timer(self._state.grace_left() or 0.0, fire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
