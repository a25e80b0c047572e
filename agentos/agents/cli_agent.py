"""What the agents for real agent CLIs share (`claude:`, `gemini:`, `llm:`).

Each runs its CLI with the prompt on stdin (prompts are long and may hold secrets: a command
line is visible to every user of the machine in `ps`), the leased key in the CLI's own
variable (and nowhere else), and its machine-readable output where it has one, read line by line
as it comes so that the answer streams into the item's output. The CLI's result becomes one of
agentos's outcomes:

    an answer                     returned; its usage recorded (ctx.record_usage)
    rate limited, with its wait   RateLimited(kind="rate"): the key cools, the item goes again
    quota spent, with its reset   RateLimited(kind="quota"): the key's group is parked
    overloaded                    RateLimited(kind="overloaded"): everybody backs off briefly
    key rejected                  CredentialRejected: the key is retired for the run
    input or set-up error         NotRetried: the same prompt would fail the same way
    anything else                 ItemError: a failure, retried per --retries

The executable and its version are checked when the agent is named, before anything starts: a
missing or too old CLI is a one-line error (exit 2) that says what to install.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from agentos.agents.base import Agent, AgentRequest
from agentos.errors import ConfigError, CredentialRejected, ItemError, RateLimited
from agentos.item.context import ItemContext
from agentos.item.process import CommandResult, LineWatcher
from agentos.item.refusals import Refusal, RefusalKind, classify_http, classify_text

log = logging.getLogger("agentos")

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
#: `--version` of a Node CLI takes a second or two on a busy machine; a hung one must not
#: hang agentos before the run has even started
VERSION_TIMEOUT = 30.0


class NotRetried(ItemError):
    """A failure that another attempt would repeat (a bad prompt, a CLI that is not set up):
    the item fails at once instead of spending its retries."""

    retry = False


@dataclass(frozen=True)
class Executable:
    """An agent CLI as found on PATH, and the version it says it is."""

    path: str
    version: str  # as the CLI prints it, e.g. "2.1.197 (Claude Code)"


_Agent = TypeVar("_Agent", bound="CliAgent")


@dataclass(frozen=True)
class CliAgent(Agent):
    """An agent CLI: which one (`program`, checked at `minimum`), for which model, found where.
    Subclasses say how to call it (`argv`) and what its result means."""

    spec: str
    model: str
    executable: Executable

    program: ClassVar[str]
    install: ClassVar[str]
    minimum: ClassVar[tuple[int, ...]]
    example: ClassVar[str]  # a spec to show when the model is missing

    @classmethod
    def from_spec(cls: type[_Agent], spec: str, option: str) -> _Agent:
        model = model_of(spec, option, cls.example)
        found = find_executable(
            cls.program, option=option, spec=spec, install=cls.install, minimum=cls.minimum
        )
        return cls(spec=spec, model=model, executable=found)

    @abstractmethod
    def argv(self, request: AgentRequest) -> list[str]:
        """The CLI's command line for `request` (never the prompt, never a key), its tool
        flags stating the request's policy."""

    def call(
        self,
        request: AgentRequest,
        ctx: ItemContext,
        *,
        on_line: LineWatcher,
        key_env: str | None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run the CLI on the prompt (on stdin, never on the command line), its stdout captured
        and every line watched as it comes; the leased key in `key_env` only."""
        try:
            return ctx.run(
                self.argv(request),
                input=request.prompt.encode(),
                capture_stdout=True,
                cwd=request.cwd,
                env=dict(env) if env else None,
                key_env=key_env,
                on_line=on_line,
            )
        except FileNotFoundError:
            raise ItemError(f"{self.spec}: {self.executable.path} is gone", exit_code=127) from None


def find_executable(
    name: str,
    *,
    option: str,
    spec: str,
    install: str,
    minimum: tuple[int, ...],
    version_args: tuple[str, ...] = ("--version",),
) -> Executable:
    """`name` on PATH, with a version of at least `minimum`; else a ConfigError (exit 2) that
    says what to install. `-v` prints what was found."""
    path = locate(name, option=option, spec=spec, install=install)
    try:
        # in a session of its own: a hung CLI is killed with everything it started (a Node
        # CLI re-executes itself), not only the process we started
        proc = subprocess.Popen(
            [path, *version_args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigError(f"{option} {spec!r}: cannot run {path}: {exc.strerror}") from None
    try:
        out, err = proc.communicate(timeout=VERSION_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"{option} {spec!r}: '{name} {' '.join(version_args)}' gave no answer in "
            f"{VERSION_TIMEOUT:g} s"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    printed = (out or err).decode("utf-8", errors="replace").strip()
    first = printed.splitlines()[0] if printed else ""
    if proc.returncode != 0:
        first = ""
    return checked(Executable(path, first), name, option=option, spec=spec, install=install,
                   minimum=minimum)  # fmt: skip


def locate(name: str, *, option: str, spec: str, install: str) -> str:
    """`name` on PATH, else beside agentos's own Python: `.venv/bin/agentos` run without the
    virtualenv activated should find the llm installed in that virtualenv."""
    path = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if path is None:
        raise ConfigError(f"{option} {spec!r}: {name} not found on PATH; install it: {install}")
    return path


def checked(
    found: Executable, name: str, *, option: str, spec: str, install: str, minimum: tuple[int, ...]
) -> Executable:
    """`found` when its version is at least `minimum`, else a ConfigError."""
    match = _VERSION.search(found.version)
    if match is None:
        raise ConfigError(
            f"{option} {spec!r}: {found.path} printed no version ({found.version[:120]!r}); "
            f"install it: {install}"
        )
    version = tuple(int(part or 0) for part in match.groups())
    if version < minimum:
        wanted = ".".join(map(str, minimum))
        raise ConfigError(
            f"{option} {spec!r}: {name} {match.group(0)} is too old (agentos needs {wanted} or "
            f"later); update it: {install}"
        )
    log.debug("%s: %s %s", spec, found.path, found.version)
    return found


def model_of(spec: str, option: str, example: str) -> str:
    model = spec.partition(":")[2].strip()
    if not model:
        prefix = spec.partition(":")[0]
        raise ConfigError(f"{option} {spec!r}: give the model after '{prefix}:', e.g. '{example}'")
    if model.startswith("-") or any(c.isspace() for c in model):
        raise ConfigError(f"{option} {spec!r}: {model!r} is not a model name")
    return model


def refused(name: str, status: int | None, text: str, ctx: ItemContext) -> BaseException | None:
    """The outcome a refusal the CLI reported stands for (see the module docstring), or None
    when `text` (and the HTTP `status` the CLI names, if any) shows none."""
    refusal: Refusal | None = (
        classify_http(status, {}, text) if status is not None else None
    ) or classify_text(text)
    if refusal is None:
        return None
    detail = f"{name}: {short(refusal.detail)}"
    if refusal.kind == RefusalKind.REJECTED:
        if ctx.credential:
            return CredentialRejected(detail)
        # no leased key: the CLI's own login (or the user's variable) was refused; another
        # attempt with the same login fails the same way
        return NotRetried(f"{detail} (the CLI's own login or key)")
    if refusal.kind in (RefusalKind.RATE, RefusalKind.QUOTA, RefusalKind.OVERLOADED):
        return RateLimited(detail, refusal.wait, kind=refusal.kind)
    return None


def failure(name: str, returncode: int, cause: str) -> ItemError:
    how = f"killed by signal {-returncode}" if returncode < 0 else f"exit {returncode}"
    return ItemError(
        f"{name}: {how}" + (f": {short(cause)}" if cause else ""),
        exit_code=returncode if returncode > 0 else -1,
        signal=-returncode if returncode < 0 else 0,
    )


#: terminal colours (CLIs colour their errors even into a pipe), and a traceback's marker lines
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_MARKER = re.compile(r"^[\s^~]+$")


def plain(text: str) -> str:
    """`text` without terminal colour codes."""
    return _ANSI.sub("", text)


def last_lines(lines: list[str], count: int = 2) -> str:
    """The last `count` lines that say something: no blank lines, colours or `^^^^` markers."""
    kept = [plain(line).strip() for line in lines]
    kept = [line for line in kept if line and not _MARKER.match(line)]
    return " | ".join(kept[-count:])


def short(text: str) -> str:
    """One line of at most 300 characters, without colours, for an error."""
    return " ".join(plain(text).split())[:300]


def count(value: Any) -> int | None:
    """A token count from a CLI's output: a whole number >= 0, else unknown."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value < 0 or not float(value).is_integer():
        return None
    return int(value)


def amount(value: Any) -> float | None:
    """A cost from a CLI's output: a finite number >= 0, else unknown."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def json_event(line: str) -> dict[str, Any] | None:
    """One line of a CLI's JSON-lines output as an object; None for anything else (a CLI
    prints other lines among them)."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class Progress:
    """The answer's text as it streams, shown in the item's output a whole line at a time."""

    def __init__(self, ctx: ItemContext) -> None:
        self.ctx = ctx
        self.parts: list[str] = []
        self._line = ""

    def add(self, text: str) -> None:
        self.parts.append(text)
        self._line += text
        while "\n" in self._line:
            done, self._line = self._line.split("\n", 1)
            self.ctx.log(done)

    def flush(self) -> None:
        if self._line:
            self.ctx.log(self._line)
            self._line = ""

    @property
    def text(self) -> str:
        return "".join(self.parts)
