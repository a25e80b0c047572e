"""`cmd:<command line>`: any command-line agent (`cmd:claude -p`, `cmd:gemini`, `cmd:llm -m x`).

The prompt goes to the command's stdin and its stdout is the answer. Its stderr lines are the
item's output, live. The leased key is in the environment variable named by `--credential-env`,
never on the command line. Exit 75 (EX_TEMPFAIL) or a rate-limit message on stderr means rate
limited; any other non-zero exit is a failure whose message leads with the last line of stderr
(where a CLI says what went wrong: `sqlite3.OperationalError: table "schemas" already exists`),
so that the summary's error column shows the cause, not the start of a traceback. The command
runs in its own process group, which is killed on timeout or termination.

Usage: the command (or a wrapper around a CLI) reports its model calls by appending one JSON
line per call to the file `$AGENTOS_USAGE_FILE` names (agentos.usage.report); agentos reads it
when the command exits. Which models a CLI calls only its calls tell, so a --budget is checked
against their prices as they come (agentos.usage.budget).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
from dataclasses import dataclass

from agentos.agents.base import Agent, AgentRequest, ToolPolicy
from agentos.errors import ConfigError, ItemError
from agentos.item.context import ItemContext
from agentos.item.process import CommandResult
from agentos.usage.budget import OverBudget


@dataclass(frozen=True)
class CommandAgent(Agent):
    """Any command (`cmd:./agent.sh`): the prompt on its stdin, the answer on its stdout."""

    spec: str
    argv: tuple[str, ...]
    #: it runs in the item's working directory (a worktree, for implement) and may change it
    edits_files = True

    @classmethod
    def from_spec(cls, spec: str, option: str) -> CommandAgent:
        line = spec.partition(":")[2].strip()
        try:
            argv = tuple(shlex.split(line))
        except ValueError as exc:
            raise ConfigError(f"{option} {spec!r}: cannot parse the command line ({exc})") from None
        if not argv:
            raise ConfigError(
                f"{option} {spec!r}: give the command after 'cmd:', e.g. 'cmd:claude -p'"
            )
        program = argv[0]
        if os.sep in program and not os.path.isabs(program):
            argv = (os.path.abspath(program), *argv[1:])  # where typed, not where it runs
        if shutil.which(argv[0]) is None:
            raise ConfigError(
                f"{option} {spec!r}: agent executable not found: {program}; "
                "install it or give its full path"
            )
        return cls(spec=spec, argv=argv)

    def run(self, request: AgentRequest, ctx: ItemContext) -> str:
        try:
            result = ctx.run_checked(
                list(self.argv), input=request.prompt.encode(), capture_stdout=True, cwd=request.cwd
            )
        except FileNotFoundError:
            raise ItemError(f"agent executable not found: {self.argv[0]}", exit_code=127) from None
        except OverBudget:
            raise  # said before the command started: not about the previous command
        except ItemError as exc:
            failed = ctx.last_command
            if failed is None or failed.returncode == 0:
                raise
            raise ItemError(_failure(failed), exit_code=exc.exit_code, signal=exc.signal) from None
        answer = result.stdout.decode("utf-8", errors="replace")
        if not answer.strip() and request.tools is not ToolPolicy.EDIT:
            # an agent that edits may well say nothing: its work is in the files
            cause = _cause(result)
            raise ItemError(
                f"{self.spec}: the agent's answer was empty"
                + (f"; its stderr ended: {cause}" if cause else "")
            )
        return answer


def absolute_spec(spec: str) -> str:
    """`cmd:./myagent.sh --fast`, typed in /home/u/w → `cmd:/home/u/w/myagent.sh --fast`. A
    spec whose program is a name (found on PATH) or already absolute, or that does not parse
    (`CommandAgent.from_spec` says why), is returned as it is."""
    line = spec.partition(":")[2].strip()
    try:
        argv = shlex.split(line)
    except ValueError:
        return spec
    if not argv or os.sep not in argv[0] or os.path.isabs(argv[0]):
        return spec
    return "cmd:" + shlex.join([os.path.abspath(argv[0]), *argv[1:]])


def _cause(result: CommandResult) -> str:
    """The last line of stderr, with the one before when it is short ('Aborted!')."""
    lines = [line.strip() for line in result.stderr_tail if line.strip()]
    if not lines:
        return ""
    if len(lines[-1]) < 30 and len(lines) > 1:
        return f"{lines[-2]} | {lines[-1]}"[-300:]
    return lines[-1][-300:]


def _failure(result: CommandResult) -> str:
    name = os.path.basename(result.argv[0]) if result.argv else "agent"
    how = (
        f"killed by {signal.Signals(result.signal).name}"
        if result.signal
        else f"exit {result.returncode}"
    )
    cause = _cause(result)
    return f"{name}: {how}" + (f": {cause}" if cause else "")
