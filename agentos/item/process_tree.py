"""Keeping track of, and killing, every process a run starts.

Three mechanisms, because each one alone leaves something behind:

1. *Process groups.* Every worker and every item subprocess leads its own group, so one `killpg`
   reaches a command and the helpers it forked (`sh -c 'sleep 100 & sleep 100'`). Groups are also
   why the terminal's Ctrl+C, which goes to the foreground group, does not reach them.
2. *Parent-death signal.* If the parent is SIGKILLed nobody runs cleanup code, so workers and the
   key server ask the kernel (`PR_SET_PDEATHSIG`) for a signal when their parent dies, and check the
   parent pid once in case it died before they asked.
3. *A run tag in the environment.* A daemon that calls `setsid()` leaves every group we know of,
   but it keeps its environment. Workers export `AGENTOS_RUN_TAG=<run id>/<worker pid>`; at the end
   of a run, after a pool is torn down, the parent kills whatever still carries its run id. (This
   is how Jenkins' ProcessTreeKiller finds build leftovers.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterable, Set

RUN_TAG_ENV = "AGENTOS_RUN_TAG"
_PR_SET_PDEATHSIG = 1
#: scans of a sweep; each freezes what it finds, so more are needed only for a tree forking fast
_MAX_FREEZE_ROUNDS = 20


def set_parent_death_signal(signum: int, expected_parent: int | None = None) -> None:
    """Ask Linux to send `signum` to this process when its parent dies; exit at once if the parent
    is already gone. Elsewhere only the parent-pid check runs."""
    if sys.platform.startswith("linux"):
        # CDLL(None) is the running program, which links libc; ctypes.util.find_library would
        # run `ldconfig -p` in a subprocess in every worker
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(128 + signum)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def terminate_groups(pgids: Iterable[int], grace: float = 0.5) -> None:
    """SIGTERM each group, give them `grace` seconds, then SIGKILL whatever is left (GNU parallel's
    --termseq, shortened)."""
    alive = [g for g in set(pgids) if signal_group(g, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        _reap(alive)
        alive = [g for g in alive if group_alive(g)]
    for pgid in alive:
        signal_group(pgid, signal.SIGKILL)


def _reap(leaders: list[int]) -> None:
    """A group's leader is usually our child; until it is reaped, its zombie keeps the group
    "alive" and a SIGTERM handler would wait out the whole grace for nothing."""
    for pid in leaders:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _proc_environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read()
    except OSError:
        return False


def _run_tag(run_id: str, worker_pid: int | None) -> bytes:
    tag = f"{RUN_TAG_ENV}={run_id}/".encode()
    if worker_pid is not None:
        tag += f"{worker_pid}\0".encode()
    return tag


def tagged_processes(
    run_id: str, worker_pid: int | None = None, children_of: Set[int] = frozenset()
) -> list[int]:
    """Pids of live processes whose environment carries this run's tag (one worker's, or any),
    and of the children of `children_of` (see kill_tagged: a child caught between fork and exec,
    or in exec, may show no environment for an instant, and one that cleared its environment is
    still ours)."""
    tag = _run_tag(run_id, worker_pid)
    me = os.getpid()
    pids: list[int] = []
    if os.path.isdir("/proc"):
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            pid = int(entry)
            if _proc_environ_has(pid, tag) or (children_of and _stat(pid)[1] in children_of):
                pids.append(pid)
        return pids
    import psutil  # pragma: no cover - non-Linux fallback

    text_tag = tag.decode().rstrip("\0")
    for proc in psutil.process_iter(["pid"]):  # pragma: no cover
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            value = env.get(RUN_TAG_ENV, "")
            if proc.pid != me and f"{RUN_TAG_ENV}={value}".startswith(text_tag):
                pids.append(proc.pid)
    return pids


def kill_tagged(run_id: str, worker_pid: int | None = None, grace: float = 0.3) -> list[int]:
    """SIGTERM, then SIGKILL, every process still carrying the run tag. Returns the pids found.

    The tree can change while it is swept: a tagged shell may fork after the scan and die of our
    SIGTERM, leaving its new child untagged by any pid we hold. So every process found is first
    frozen (SIGSTOP; a stopped process cannot fork), and the scan repeats until it finds nothing
    new; only then is everything terminated (SIGTERM + SIGCONT, so that handlers run). A process
    stops only on its way out of the system call it is in, so each scan waits until the frozen
    ones have stopped: a fork under way has by then made its child visible to the next scan (a
    scan right after the SIGSTOPs missed such a child, 1 run in ~60 in CI)."""
    found: list[int] = []
    seen: set[int] = set()
    for _ in range(_MAX_FREEZE_ROUNDS):
        fresh = [p for p in tagged_processes(run_id, worker_pid, seen) if p not in seen]
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        seen.update(fresh)
        found.extend(fresh)
        _wait_stopped(fresh)
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + grace
    remaining = found
    while remaining and time.monotonic() < deadline:
        time.sleep(0.01)
        remaining = [p for p in remaining if _alive(p)]
    for pid in remaining:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return found


def _wait_stopped(pids: list[int], timeout: float = 0.2) -> None:
    """Until each process is stopped or gone (bounded: one in uninterruptible sleep stops late)."""
    deadline = time.monotonic() + timeout
    waiting = pids
    while True:
        waiting = [p for p in waiting if _stat(p)[0] not in _STOPPED_OR_GONE]
        if not waiting or time.monotonic() >= deadline:
            return
        time.sleep(0.001)


_STOPPED_OR_GONE = frozenset({"T", "t", "Z", "X", ""})


def _stat(pid: int) -> tuple[str, int]:
    """(state letter, parent pid) from /proc/<pid>/stat; ("", 0) when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # the fields after the parenthesised command name: state, ppid, ...
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1])
    except (OSError, IndexError, ValueError):
        return "", 0


def _alive(pid: int) -> bool:
    return _stat(pid)[0] not in ("Z", "")


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (zombies count as dead)."""
    if os.path.isdir("/proc"):
        return _alive(pid)
    try:  # pragma: no cover - non-Linux
        os.kill(pid, 0)
    except ProcessLookupError:  # pragma: no cover
        return False
    return True  # pragma: no cover
