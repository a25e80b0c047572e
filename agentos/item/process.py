"""How an item runs a command: `ItemContext.run` builds a `Command`, `run_command` runs it.

The command gets its own process group and session (so the terminal's Ctrl+C does not reach it
and one `killpg` reaches everything it forks) and the environment the context made for it (the
leased key in it, never on the command line); stdin is /dev/null unless given input. A pump
moves the bytes until it exits: input to its stdin, stdout into memory when asked, stderr to the
item's output (fd 2) while it is scanned for rate-limit messages; a `LineWatcher` sees each whole
line as it is printed. What the command left behind in its group is killed when it exits, and
every group still running is killed when the attempt ends (`kill_started_processes`).

    ctx.run(argv, **options) ─► Command ─► run_command ─► Popen (own session, limited memory)
                                                           └─► _Pump: select() over the pipes
                                                                 and a pidfd for the exit

Runs inside workers: imports nothing of the CLI.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple, TypedDict

from agentos.errors import ItemError, RateLimited
from agentos.item.process_tree import kill_tagged, terminate_groups

DEFAULT_RATE_LIMIT_PATTERN = r"429|rate.?limit|quota exceeded|RESOURCE_EXHAUSTED"
EX_TEMPFAIL = 75
_RETRY_AFTER = re.compile(rb"retry[-_ ]?after[\"']?\s*[:=]?\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_MAX_CAPTURE = 256 * 1024 * 1024
_STDERR_TAIL_LINES = 20

#: `ctx.run(on_line=...)`: called with ("out" | "err", line) for each whole line the command
#: prints, as it prints it; returning True stops the command (its process group is terminated)
LineWatcher = Callable[[str, str], bool | None]

#: Process groups started by the current attempt; the worker's SIGTERM handler kills them too.
ACTIVE_GROUPS: set[int] = set()


def kill_started_processes(run_id: str, *, sweep_tag: bool, grace: float = 0.5) -> None:
    """End what this process's items started: the registered process groups, and, with
    `sweep_tag`, whatever carries this process's run tag (a command forked an instant before a
    signal is not registered yet, and a daemon may have left its group; a /proc scan, so only
    when something went wrong)."""
    if ACTIVE_GROUPS:
        terminate_groups(list(ACTIVE_GROUPS), grace=grace)
        ACTIVE_GROUPS.clear()
    if sweep_tag and run_id:
        kill_tagged(run_id, os.getpid())


def limited(argv: list[str], memory: int | None) -> list[str]:
    """`argv`, started under RLIMIT_DATA = `memory` bytes when given: through `sh -c 'ulimit
    -d'`, which sets it in the child before the exec (no preexec_fn: forking a threaded worker
    must not run Python in the child). RLIMIT_DATA counts what a process writes to (heap,
    private mappings), not what it merely reserves, so programs that reserve large address
    spaces (Node.js, the JVM, Go) still start."""
    if not memory:
        return argv
    kib = max(1, memory // 1024)
    return ["/bin/sh", "-c", 'ulimit -d "$0" && exec "$@"', str(kib), *argv]


@dataclass(frozen=True, eq=False)
class CommandPolicy:
    """What the run says about every command of an attempt: the stderr pattern that means
    "rate limited" (--rate-limit-pattern), and the data memory each may use (--item-memory)."""

    rate_limit_pattern: str = DEFAULT_RATE_LIMIT_PATTERN
    memory_limit: int | None = None

    @cached_property
    def rate_limit_re(self) -> re.Pattern[bytes]:
        return re.compile(self.rate_limit_pattern.encode(), re.IGNORECASE)


class CommandOptions(TypedDict, total=False):
    """`ctx.run`'s options (see `Command`)."""

    input: bytes | None
    capture_stdout: bool
    cwd: str | os.PathLike[str] | None
    env: dict[str, str] | None
    key_env: str | None
    on_line: LineWatcher | None
    with_key: bool
    merge_stderr: bool
    timeout: float | None


class Command(NamedTuple):
    """One command as an item asked for it. `input`: bytes for its stdin. `capture_stdout`:
    keep its stdout (else it goes to the item's output). `env`: variables to add to the
    environment the context makes. `key_env`: the variable the leased key goes in instead of
    the context's (a CLI agent's own: ANTHROPIC_API_KEY, GEMINI_API_KEY); `with_key=False`: no
    key at all (a command that calls no model, such as tests of code an agent wrote).
    `on_line`: see `LineWatcher` (stdout is still captured when asked). `merge_stderr`: stderr
    goes where stdout goes (captured with it, in order). `timeout`: seconds after which its
    process group is killed and the result says `timed_out`."""

    argv: list[str]
    input: bytes | None = None
    capture_stdout: bool = False
    cwd: str | os.PathLike[str] | None = None
    env: dict[str, str] | None = None
    key_env: str | None = None
    on_line: LineWatcher | None = None
    with_key: bool = True
    merge_stderr: bool = False
    timeout: float | None = None


@dataclass(eq=False)
class CommandResult:
    """How one command ended: its exit, what it printed that the item keeps, and whether the
    provider refused it."""

    argv: list[str]
    returncode: int
    stdout: bytes
    stderr_tail: list[str]
    rate_limited: bool
    retry_after: float | None
    #: the `on_line` watcher stopped the command (its returncode is then the signal's)
    stopped: bool = False
    #: the command ran past the `timeout` it was given and its process group was killed
    timed_out: bool = False

    @property
    def signal(self) -> int:
        return -self.returncode if self.returncode < 0 else 0

    def describe_failure(self) -> str:
        how = (
            f"killed by {signal.Signals(self.signal).name}"
            if self.signal
            else f"exit {self.returncode}"
        )
        tail = " | ".join(line for line in self.stderr_tail[-3:] if line.strip())
        name = os.path.basename(self.argv[0]) if self.argv else "command"
        return f"{name}: {how}" + (f": {tail}" if tail else "")

    def raise_for_status(self) -> None:
        """Nothing for exit 0; rate-limit signs → RateLimited; any other failure → ItemError."""
        if self.returncode == 0:
            return
        if self.rate_limited:
            # which "no" it was: a spent quota parks the key's group, an overloaded provider
            # backs everyone off, anything else is a rate limit (item.refusals)
            from agentos.item.refusals import RefusalKind, classify_text

            refusal = classify_text("\n".join(self.stderr_tail))
            kind = (
                refusal.kind
                if refusal is not None
                and refusal.kind in (RefusalKind.QUOTA, RefusalKind.OVERLOADED)
                else RefusalKind.RATE
            )
            wait = self.retry_after
            if wait is None and refusal is not None:
                wait = refusal.wait
            raise RateLimited(self.describe_failure(), retry_after=wait, kind=kind)
        raise ItemError(
            self.describe_failure(),
            exit_code=self.returncode if self.returncode > 0 else -1,
            signal=self.signal,
        )


def run_command(command: Command, env: dict[str, str], policy: CommandPolicy) -> CommandResult:
    """Run `command` with the environment `env`, in its own session; see the module docstring.
    Never raises for a non-zero exit (see `CommandResult.raise_for_status`); raises OSError
    when the program cannot start."""
    pattern = policy.rate_limit_re  # a bad pattern fails here, before anything starts
    proc = subprocess.Popen(
        limited(command.argv, policy.memory_limit),
        stdin=subprocess.PIPE if command.input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE if command.capture_stdout else None,
        stderr=subprocess.STDOUT if command.merge_stderr else subprocess.PIPE,
        start_new_session=True,
        env=env,
        cwd=command.cwd,
    )
    ACTIVE_GROUPS.add(proc.pid)
    try:
        pump = _Pump(proc, command.input, pattern, command.on_line)
        if command.timeout is not None:
            pump.deadline = time.monotonic() + command.timeout
        pump.run()
        returncode = proc.wait()
    except BaseException:
        terminate_groups([proc.pid], grace=0.2)
        with contextlib.suppress(Exception):
            proc.wait(timeout=2)
        raise
    finally:
        # whatever the command left running in its group (background jobs) ends with it
        terminate_groups([proc.pid], grace=0.2)
        ACTIVE_GROUPS.discard(proc.pid)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    return CommandResult(
        argv=list(command.argv),
        returncode=returncode,
        stdout=pump.stdout(),
        stderr_tail=list(pump.tail),
        rate_limited=returncode == EX_TEMPFAIL or (returncode != 0 and pump.matched),
        retry_after=pump.retry_after,
        stopped=pump.stopped,
        timed_out=pump.timed_out,
    )


class _Pump:
    """Moves bytes between a child and us until it exits: input → stdin, stdout → memory,
    stderr → our fd 2 (the item's output) with a rolling rate-limit scan."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        data: bytes | None,
        pattern: re.Pattern[bytes],
        on_line: LineWatcher | None = None,
    ) -> None:
        self.proc = proc
        self.pattern = pattern
        self.on_line = on_line
        self.stopped = False
        self._out_carry = b""
        self.matched = False
        self.retry_after: float | None = None
        self.tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._chunks: list[bytes] = []
        self._captured = 0
        self._input = memoryview(data) if data is not None else None
        self._carry = b""
        self._line_carry = b""
        self.deadline: float | None = None  # time.monotonic() when the command is killed
        self.timed_out = False

    def stdout(self) -> bytes:
        return b"".join(self._chunks)

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        proc = self.proc
        try:
            if proc.stdin is not None:
                if self._input:
                    os.set_blocking(proc.stdin.fileno(), False)
                    sel.register(proc.stdin, selectors.EVENT_WRITE, "in")
                else:
                    proc.stdin.close()
            if proc.stdout is not None:
                sel.register(proc.stdout, selectors.EVENT_READ, "out")
            if proc.stderr is not None:
                sel.register(proc.stderr, selectors.EVENT_READ, "err")
            exited_at: float | None = None
            pidfd = _pidfd(proc.pid)
            if pidfd is not None:
                sel.register(pidfd, selectors.EVENT_READ, "exit")
            while len(sel.get_map()) > (1 if pidfd is not None else 0):
                # once the command exited, give its pipes a moment: a background child that still
                # holds them must not keep the attempt alive
                timeout = 0.05 if pidfd is None else None
                if exited_at is not None:
                    timeout = max(0.0, exited_at + 0.2 - time.monotonic())
                if self.deadline is not None and exited_at is None:
                    left = max(0.0, self.deadline - time.monotonic())
                    timeout = left if timeout is None else min(timeout, left)
                    if left == 0.0:
                        self.timed_out = True
                        terminate_groups([proc.pid], grace=1.0)
                        break
                events = sel.select(timeout)
                if not events and exited_at is not None:
                    break
                if not events and proc.poll() is not None and exited_at is None:
                    exited_at = time.monotonic()
                for key, _ in events:
                    if key.data == "exit":
                        sel.unregister(key.fileobj)
                        os.close(pidfd)  # type: ignore[arg-type]
                        pidfd = None
                        exited_at = time.monotonic()
                    elif key.data == "in":
                        self._write_input(sel, key.fileobj)
                    else:
                        chunk = os.read(key.fd, 65536)
                        if not chunk:
                            sel.unregister(key.fileobj)
                        elif key.data == "out":
                            self._keep(chunk)
                        else:
                            self._stderr(chunk)
                if self.stopped:
                    # the watcher has what it needs (a refusal the CLI would retry on its own):
                    # the command ends now, and its output after this is not wanted
                    terminate_groups([proc.pid], grace=0.2)
                    break
                if pidfd is None and exited_at is None and proc.poll() is not None:
                    exited_at = time.monotonic()
            if self._out_carry and not self.stopped:
                self._watch("out", self._out_carry)
            if self._line_carry:
                self.tail.append(self._line_carry.decode(errors="replace"))
                if not self.stopped:
                    self._watch("err", self._line_carry)
        finally:
            if pidfd is not None:
                os.close(pidfd)
            sel.close()

    def _write_input(self, sel: selectors.BaseSelector, pipe: Any) -> None:
        assert self._input is not None
        try:
            written = os.write(pipe.fileno(), self._input[:65536])
            self._input = self._input[written:]
        except BlockingIOError:
            return
        except (BrokenPipeError, OSError):
            self._input = self._input[:0]
        if not self._input:
            sel.unregister(pipe)
            with contextlib.suppress(OSError):
                pipe.close()

    def _keep(self, chunk: bytes) -> None:
        self._captured += len(chunk)
        if self._captured > _MAX_CAPTURE:
            raise ItemError(f"command printed more than {_MAX_CAPTURE >> 20} MiB on stdout")
        self._chunks.append(chunk)
        if self.on_line is not None:
            lines = (self._out_carry + chunk).split(b"\n")
            self._out_carry = lines.pop()
            for line in lines:
                self._watch("out", line)

    def _watch(self, stream: str, line: bytes) -> None:
        if self.on_line is None or self.stopped:
            return
        if self.on_line(stream, line.decode(errors="replace")):
            self.stopped = True

    def _stderr(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            try:
                view = view[os.write(2, view) :]
            except BrokenPipeError:
                break
        window = self._carry + chunk
        if not self.matched and self.pattern.search(window):
            self.matched = True
        for match in _RETRY_AFTER.finditer(window):
            self.retry_after = float(match.group(1))
        self._carry = window[-256:]
        lines = (self._line_carry + chunk).split(b"\n")
        self._line_carry = lines.pop()[-4096:]
        for line in lines[-_STDERR_TAIL_LINES:]:
            self.tail.append(line[-4096:].decode(errors="replace"))
        for line in lines:
            self._watch("err", line)


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None  # pragma: no cover
    try:
        return int(opener(pid))
    except OSError:  # pragma: no cover - old kernel
        return None
