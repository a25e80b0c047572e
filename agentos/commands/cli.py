"""The `agentos` command: `run`, `requirements`, `implement`.

`main` is the only place that turns exceptions into exit codes: user mistakes (click usage errors,
`AgentosError`) become one line on stderr and exit 2 (or their own code); a KeyboardInterrupt that
arrives before the runner installed its own handlers becomes exit 130. Nothing else is caught, so a
real bug still shows its traceback. The `agentos` group routes click's own standalone mode (what
CliRunner uses) through the same place, so tests see what users see.
"""

from __future__ import annotations

import importlib
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from agentos.commands import quick_exit
from agentos.commands.interrupted import exit_interrupted
from agentos.engine.output.escape import escape_text
from agentos.engine.shutdown import EarlyInterrupt, run_began
from agentos.errors import AgentosError
from agentos.item.workflow import Workflow
from agentos.run.runner import build_command, configure_logging
from agentos.version import __version__

#: command name -> module whose WORKFLOW it runs; imported only when that command is used,
#: so `agentos run` does not pay for loading the LLD workflows and their agents
WORKFLOW_MODULES = {
    "run": "agentos.workflows.each_line",
    "requirements": "agentos.workflows.requirements",
    "implement": "agentos.workflows.implement",
}


#: commands that are not workflows: name -> module whose COMMAND it is
OTHER_COMMANDS = {
    "keys": "agentos.commands.keys",
    "status": "agentos.commands.status",
    "logs": "agentos.commands.logs",
    "report": "agentos.commands.report",
}


class WorkflowGroup(click.Group):
    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        _invoke(self, args, prog_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*WORKFLOW_MODULES, *OTHER_COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in OTHER_COMMANDS:
            found: click.Command = importlib.import_module(OTHER_COMMANDS[cmd_name]).COMMAND
            return found
        module = WORKFLOW_MODULES.get(cmd_name)
        if module is None:
            return None
        workflow: Workflow = importlib.import_module(module).WORKFLOW
        return build_command(workflow)


@click.group(
    name="agentos",
    cls=WorkflowGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="agentos")
def cli() -> None:
    """Run LLM agent workflows over many items: in parallel worker processes, one leased API key
    per running item, every output line prefixed with its item id, and a clean stop on Ctrl+C.

    Without --parallel, each command runs its items one after another, like a plain tool."""


def invoke(
    command: click.Command, args: Sequence[str] | None = None, prog_name: str | None = None
) -> NoReturn:
    configure_logging()
    try:
        _invoke(command, args, prog_name)
    except SystemExit as exc:
        quick_exit.exiting_with(exc.code)
        raise
    finally:
        # the run is over (or never started); a Ctrl+C now must not turn a clean exit into a
        # traceback from interpreter shutdown
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _invoke(command: click.Command, args: Sequence[str] | None, prog_name: str | None) -> NoReturn:
    try:
        # not standalone: click's errors and ours reach the one place below unchanged (a
        # `--help` or `--version` comes back as its exit code), and a broken stdout
        # (`agentos run ... | head`) is click's to quiet: it exits 1
        code = command.main(
            args=list(args) if args is not None else None,
            prog_name=prog_name,
            standalone_mode=False,
        )
    except (click.ClickException, AgentosError) as exc:
        _show(exc, _command_path(command, args, prog_name))
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):  # Abort: click's form of a Ctrl+C
        exit_interrupted(before_run=_before_run(command, args))
    if EarlyInterrupt.was_received():  # a Ctrl+C dropped before any handler of ours saw it
        exit_interrupted()
    sys.exit(code if isinstance(code, int) else 0)


def _show(exc: click.ClickException | AgentosError, command_path: str) -> None:
    """An error as one line on stderr; a bare `agentos` (click's NoArgsIsHelpError) gets the
    help it asks for."""
    if isinstance(exc, AgentosError):
        # the message may quote an item or a file's line: shown, never obeyed by the terminal
        click.echo(f"agentos: error: {escape_text(exc.format_message())}", err=True)
    elif isinstance(exc, click.UsageError) and not isinstance(
        exc, click.exceptions.NoArgsIsHelpError
    ):
        click.echo(usage_error_line(exc, command_path), err=True)
    else:
        exc.show()


def _before_run(command: click.Command, args: Sequence[str] | None) -> bool:
    """A Ctrl+C stopped a workflow command before its run began: nothing exists to resume."""
    if run_began():
        return False
    if not isinstance(command, click.Group):
        return True  # a stand-alone workflow script
    words = list(args) if args is not None else sys.argv[1:]
    return next((w for w in words if not w.startswith("-")), None) in WORKFLOW_MODULES


def usage_error_line(exc: click.UsageError, command_path: str = "agentos") -> str:
    """click's usage block (usage, "Try --help", "Error: ...") as the one line every agentos error
    is: `agentos: error: <what is wrong>; see '<command> --help'`."""
    what = " ".join(exc.format_message().split())  # click joins some hints with newlines
    what = _DID_YOU_MEAN.sub(r" (did you mean \1?)", what).removesuffix(".")
    if exc.ctx is not None:
        command_path = exc.ctx.command_path
    return f"agentos: error: {what}; see '{command_path} --help'"


#: click's "No such option '--x'. Did you mean '--y'?" reads better as a clause of one line
_DID_YOU_MEAN = re.compile(r"\. \(?Did you mean (.*)\?\)?$")


def _command_path(command: click.Command, args: Sequence[str] | None, prog_name: str | None) -> str:
    """The command the arguments were for, for errors click raises without a context (its
    option parser's): `agentos run` when the first word after `agentos` names a command."""
    path = prog_name or command.name or "agentos"
    if isinstance(command, WorkflowGroup):
        words = list(args) if args is not None else sys.argv[1:]
        first = next((w for w in words if not w.startswith("-")), None)
        if first in WORKFLOW_MODULES:
            path = f"{path} {first}"
    return path


def run_workflow_cli(workflow: Workflow, prog_name: str | None = None) -> NoReturn:
    """Entry point for a stand-alone script that runs one workflow."""
    invoke(build_command(workflow), prog_name=prog_name)


def main() -> NoReturn:
    invoke(cli, prog_name="agentos")
