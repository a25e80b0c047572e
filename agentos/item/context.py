"""`ItemContext`: what `execute_item(item, ctx)` gets, and how items run subprocesses.

`ctx.run(argv)` is the one way items should start processes. It puts the command in its own process
group and session (so the terminal's Ctrl+C does not reach it and one `killpg` reaches everything
it forks), passes the leased key in the environment and never on the command line, keeps stdin at
/dev/null unless given input, tees stderr to the item's output while scanning it for rate-limit
messages, and kills what the command left behind when it exits or when the attempt ends.

Runs inside workers: imports nothing of the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentos.beneath import Beneath, write_beneath
from agentos.errors import ItemError, RateLimited
from agentos.governor.credentials import CREDENTIALS_ENV
from agentos.item.process_tree import RUN_TAG_ENV, kill_tagged, terminate_groups
from agentos.item.workflow import Item
from agentos.usage.budget import ItemLimits
from agentos.usage.prices import PriceBook
from agentos.usage.record import UNKNOWN_MODEL, Call, Tally, UsageLog
from agentos.usage.report import (
    USAGE_FILE_ENV,
    UsageFile,
    attempt_calls_path,
    attempt_usage_path,
    call_line,
)

if TYPE_CHECKING:  # the governor (and email.utils, for its dates) loads only when a call needs it
    from agentos.governor.governor import CallGrant

#: the environment variable an item's command finds its leased key in (--credential-env)
DEFAULT_CREDENTIAL_ENV = "AGENTOS_API_KEY"
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


@dataclass
class CommandResult:
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


@dataclass
class ItemContext:
    """Per-attempt context. `credential` is the leased key (None without keys); it is also in the
    environment of every `ctx.run` subprocess under `credential_env`."""

    item: Item
    attempt: int
    run_dir: Path
    config: Any
    #: not in repr: an item that prints or logs its context (f"{ctx}") must not print the key
    credential: str | None = field(default=None, repr=False)
    credential_label: str | None = None
    credential_env: str = DEFAULT_CREDENTIAL_ENV
    rate_limit_pattern: str = DEFAULT_RATE_LIMIT_PATTERN
    parallel: bool = True
    run_tag: str = ""  # exported to subprocesses so that cleanup can find them (process_tree)
    deadline: float | None = None  # time.monotonic() when the attempt times out
    last_command: CommandResult | None = None
    #: the argv of the latest `run`, set before it starts: an attempt that times out or is
    #: interrupted mid-command still records what it was running (the joblog's Command)
    last_argv: list[str] | None = None
    #: the rate governor (or its proxy), for agents that take a key per call; None without keys
    governor: Any = None
    max_key_wait: float = 900.0
    #: how the item ended, in a word or two, when "done" says too little ("Draft" rather than
    #: "Approved"): shown beside its status in the summary, recorded in the journal
    detail: str = ""
    #: what the item produced, as short named strings ({"branch": ..., "commit": ...}): kept
    #: in the journal and summary.json whatever the attempt's end; "summary", when set, is the
    #: one line the summary table shows
    outputs: dict[str, str] = field(default_factory=dict)
    #: seconds this attempt's calls waited for a key, by reason (journaled)
    waits: dict[str, float] = field(default_factory=dict)
    #: prices for the calls' costs, and the item's caps (--item-budget, --item-tokens)
    prices: PriceBook = field(default_factory=PriceBook)
    limits: ItemLimits = field(default_factory=ItemLimits)
    #: what the item's earlier attempts spent: its caps are the item's, not the attempt's
    spent_before: Tally | None = None
    #: this attempt's model calls (`record_usage`), carried back in its result
    usage: UsageLog = field(default_factory=UsageLog)
    #: --item-memory: the data memory (RLIMIT_DATA) each process `run` starts may use
    memory_limit: int | None = None
    _usage_file: UsageFile | None = field(default=None, repr=False)
    _calls_fd: int | None = field(default=None, repr=False)
    _rate_limit_re: re.Pattern[bytes] | None = field(default=None, repr=False)
    #: every key `call_key` handed this attempt, with its label: an agent's answer may quote
    #: any of them, and `redact` must find them after the calls are over
    _seen_keys: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def item_id(self) -> str:
        return self.item.id

    @property
    def state_dir(self) -> Path:
        """`<run-dir>/items/<id>/`: the item's private working state (created on first use)."""
        with Beneath(self.run_dir, create=True) as place:  # no link below it followed
            return place.makedirs(f"items/{self.item.id}")

    def keep(self, path: Path, text: str) -> None:
        """A file of the item's audit trail (a prompt, an answer, a test run) at `path` under
        the run directory: redacted like everything written from an agent's answer, and written
        beneath the run directory without following a link."""
        rel = path.relative_to(self.run_dir)
        write_beneath(self.run_dir, rel, self.redact(text), durable=False)

    def env(
        self,
        extra: dict[str, str] | None = None,
        key_env: str | None = None,
        *,
        with_key: bool = True,
    ) -> dict[str, str]:
        """The environment of the item's commands. `key_env`: the variable the leased key goes
        in instead of `credential_env` (a CLI agent's own: ANTHROPIC_API_KEY, GEMINI_API_KEY);
        the key is then in that variable only. `with_key=False`: no key at all (a command that
        calls no model, such as tests of code an agent wrote)."""
        env = dict(os.environ)
        env.pop(self.credential_env, None)
        # every key of the run, if the user gave them this way: an item gets its lease, no more
        env.pop(CREDENTIALS_ENV, None)
        if self.credential is not None and with_key:
            env[key_env or self.credential_env] = self.credential
        if self.run_tag:
            env[RUN_TAG_ENV] = self.run_tag
        env["AGENTOS_ITEM_ID"] = self.item.id
        env["AGENTOS_ATTEMPT"] = str(self.attempt)
        env[USAGE_FILE_ENV] = self.usage_file
        if extra:
            env.update(extra)
        return env

    def log(self, message: str) -> None:
        """A progress line in the item's output (stderr, so it never mixes with a response)."""
        print(message, file=sys.stderr, flush=True)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def time_left(self, default: float = 600.0) -> float:
        """Seconds until this attempt's --timeout (for timeouts of the item's own calls)."""
        if self.deadline is None:
            return default
        return max(0.05, self.deadline - time.monotonic())

    # -- keys per call (HTTP agents)
    @property
    def keys_per_call(self) -> bool:
        return self.governor is not None

    def call_key(self, tokens: float | None = None) -> CallGrant:
        """A key for one model call estimated at `tokens`, after waiting as long as the
        governor says (the wait and its reason go to the journal). An item holding a leased key
        is paced on that key. Raises RateLimited (kind "quota") when no key will serve within
        --max-key-wait: the item goes back to the queue and the run stops."""
        if self.governor is None:
            raise RuntimeError("call_key needs keys: check ctx.keys_per_call first")
        pinned = self.credential_label if self.credential else None
        waited = 0.0
        while True:
            grant: CallGrant = self.governor.acquire_call(self.item.id, tokens, pinned)
            if grant.call_id:
                self._seen_keys[grant.secret] = grant.label
                if grant.delay > 0:
                    self._note_wait(grant.reason or "pacing", grant.delay)
                    time.sleep(grant.delay)
                    # its key may have been parked while this call waited its turn
                    if grant.delay > 0.05 and not self.governor.confirm_call(grant.call_id):
                        continue
                return grant
            if grant.delay > self.max_key_wait or waited + grant.delay > self.max_key_wait:
                raise RateLimited(f"no key can serve: {grant.reason}", grant.delay, kind="quota")
            step = max(0.05, min(grant.delay, 5.0))
            self._note_wait(grant.reason, step)
            time.sleep(step)
            waited += step

    def end_call(self, grant: CallGrant, outcome: str, info: dict[str, Any] | None = None) -> None:
        """Tell the governor how the call went (see Governor.end_call). What that changed (a
        key parked or retired) the parent says, once, for the whole run."""
        self.governor.end_call(grant.call_id, outcome, info or {})

    def redact(self, text: str) -> str:
        """`text` with every key this attempt has seen (its lease, its per-call keys) replaced
        by `[label]`. Output is redacted as it streams; files an item writes from an agent's
        answer (an agent may echo its environment) must go through this, or the key ends up
        in a repository and gets pushed."""
        keys = dict(self._seen_keys)
        if self.credential:
            keys[self.credential] = self.credential_label or "key"
        for secret in sorted(keys, key=len, reverse=True):  # a key inside a longer one
            if secret and secret in text:
                text = text.replace(secret, f"[{keys[secret]}]")
        return text

    def _note_wait(self, reason: str, seconds: float) -> None:
        self.waits[reason] = round(self.waits.get(reason, 0.0) + seconds, 3)

    # -- usage and budgets
    def record_usage(
        self,
        model: str | None,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_tokens: int = 0,
        cost_usd: float | None = None,
        provider: str | None = None,
        key_label: str | None = None,
    ) -> float | None:
        """Record one model call: its model (as the provider answered it), its input tokens
        (`cached_tokens` of them read from a prompt cache), its output tokens, and its cost
        when the provider states it. Tokens None: the provider did not say (the call is
        counted, its tokens and cost unknown). `provider` (an API URL or a name) helps find
        the price; `key_label` is the key the call used (default: the attempt's lease).
        Returns the call's cost in USD, None when it is unknown. Call `check_budget` before
        the next call."""
        for name, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("cached_tokens", cached_tokens),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"record_usage: {name} must be an int or None, not {value!r}")
            if value is not None and value < 0:
                raise ValueError(f"record_usage: {name} must be >= 0, not {value}")
        if cost_usd is not None and not cost_usd >= 0:
            raise ValueError(f"record_usage: cost_usd must be >= 0, not {cost_usd}")
        call = Call(
            # a model name comes from a server or a wrapper: it goes into files, so no key in it
            model=self.redact(model.strip()) if model and model.strip() else UNKNOWN_MODEL,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            cost_usd=None if cost_usd is None else float(cost_usd),
            provider=provider,
            key=key_label or self.credential_label,
        )
        self._note_call(call)
        return self._record(call)

    def _record(self, call: Call) -> float | None:
        cost = self.prices.cost(call)
        self.usage.add(call, cost)
        return cost

    @contextlib.contextmanager
    def model_call(self, model: str, key_label: str | None = None) -> Iterator[None]:
        """Around one model call made in this process (an HTTP agent's): the call is written
        down before it is sent and as it is answered (`record_usage`), so that what it spent
        still counts if the worker is killed before the attempt can report it (see
        agentos.usage.report.lost_attempt_usage)."""
        label = key_label or self.credential_label
        self._note_call({"begun": model, "key": label})
        try:
            yield
        finally:
            self._note_call({"ended": True})

    def _note_call(self, entry: dict[str, Any] | Call) -> None:
        if isinstance(entry, Call):
            line = call_line(entry)
        else:
            line = json.dumps({k: v for k, v in entry.items() if v is not None}).encode() + b"\n"
        try:
            if self._calls_fd is None:
                path = attempt_calls_path(self.run_dir, self.item.id, self.attempt)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                self._calls_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(self._calls_fd, line)  # one write: in the kernel even if we die next
        except OSError:
            pass  # only a killed attempt needs it; a live one reports its usage itself

    def close_calls(self) -> None:
        if self._calls_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._calls_fd)
            self._calls_fd = None

    def spent(self) -> Tally:
        """The item's usage so far: its earlier attempts' and this one's."""
        total = self.usage.total.copy()
        if self.spent_before is not None:
            total.merge(self.spent_before)
        return total

    def check_budget(self) -> None:
        """Before a model call: raise OverBudget (a failure that is not retried) when the
        item has passed --item-budget or --item-tokens."""
        if self.limits:
            self.limits.check(self.spent())

    @property
    def usage_file(self) -> str:
        """This attempt's usage file (`$AGENTOS_USAGE_FILE` of its commands): one JSON line per
        model call, appended by a CLI agent or its wrapper (agentos.usage.report)."""
        if self._usage_file is None:
            path = attempt_usage_path(self.run_dir, self.item.id, self.attempt)
            self._usage_file = UsageFile(path)
            with contextlib.suppress(OSError):  # unwritable: the wrapper's append fails, not us
                self._usage_file.prepare()
        return self._usage_file.path

    def scrub_usage_file(self) -> None:
        """At the attempt's end: no key stays in its usage file (see UsageFile.scrub)."""
        if self._usage_file is not None:
            self._usage_file.scrub(self.redact)

    def collect_usage_file(self) -> None:
        """Record the calls appended to the usage file since the last look; a malformed line is
        skipped and said in the item's output."""
        if self._usage_file is None:
            return
        for number, found in self._usage_file.read_new():
            if isinstance(found, str):
                self.usage.skipped_lines += 1
                self.log(f"agentos: {USAGE_FILE_ENV} line {number} skipped: {found}")
                continue
            model = self.redact(found.model)
            self._record(
                Call(
                    model,
                    found.input_tokens,
                    found.output_tokens,
                    found.cached_tokens,
                    found.cost_usd,
                    found.provider,
                    self.credential_label,
                )
            )

    # -- subprocesses
    def run(
        self,
        argv: list[str],
        *,
        input: bytes | None = None,
        capture_stdout: bool = False,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        key_env: str | None = None,
        on_line: LineWatcher | None = None,
        with_key: bool = True,
        merge_stderr: bool = False,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run `argv` in its own session; see the module docstring. Never raises for a non-zero
        exit (see `run_checked`); raises OSError when the program cannot start. `key_env`,
        `with_key`: see `env`. `on_line`: see `LineWatcher` (stdout is still captured when
        asked). `merge_stderr`: stderr goes where stdout goes (captured with it, in order).
        `timeout`: seconds after which the command's process group is killed and the result
        says `timed_out` (the attempt's own --timeout applies as well)."""
        if self._rate_limit_re is None:
            self._rate_limit_re = re.compile(self.rate_limit_pattern.encode(), re.IGNORECASE)
        # a command is a call (or many) to a model: an item over its caps makes no more
        self.check_budget()
        self.last_argv = list(argv)
        proc = subprocess.Popen(
            limited(argv, self.memory_limit),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else None,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            start_new_session=True,
            env=self.env(env, key_env, with_key=with_key),
            cwd=cwd,
        )
        ACTIVE_GROUPS.add(proc.pid)
        try:
            pump = _Pump(proc, input, self._rate_limit_re, on_line)
            if timeout is not None:
                pump.deadline = time.monotonic() + timeout
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
            # what it reported is spent, whether it succeeded or not
            with contextlib.suppress(Exception):
                self.collect_usage_file()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        result = CommandResult(
            argv=list(argv),
            returncode=returncode,
            stdout=pump.stdout(),
            stderr_tail=list(pump.tail),
            rate_limited=returncode == EX_TEMPFAIL or (returncode != 0 and pump.matched),
            retry_after=pump.retry_after,
            stopped=pump.stopped,
            timed_out=pump.timed_out,
        )
        self.last_command = result
        return result

    def run_checked(self, argv: list[str], **kwargs: Any) -> CommandResult:
        """`run`, then: rate-limit signs → RateLimited; other non-zero exit → ItemError."""
        result = self.run(argv, **kwargs)
        if result.returncode == 0:
            return result
        if result.rate_limited:
            # which "no" it was: a spent quota parks the key's group, an overloaded provider
            # backs everyone off, anything else is a rate limit (governor.signals)
            from agentos.item.refusals import OVERLOADED, QUOTA, RATE, classify_text

            refusal = classify_text("\n".join(result.stderr_tail))
            kind = (
                refusal.kind
                if refusal is not None and refusal.kind in (QUOTA, OVERLOADED)
                else RATE
            )
            wait = result.retry_after
            if wait is None and refusal is not None:
                wait = refusal.wait
            raise RateLimited(result.describe_failure(), retry_after=wait, kind=kind)
        raise ItemError(
            result.describe_failure(),
            exit_code=result.returncode if result.returncode > 0 else -1,
            signal=result.signal,
        )

    @staticmethod
    def describe_argv(argv: list[str]) -> str:
        return shlex.join(argv)


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
