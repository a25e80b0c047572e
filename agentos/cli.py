"""The `agentos` command: `run`, `requirements`, `implement`.

`main` is the only place that turns exceptions into exit codes: user mistakes (click usage errors,
`AgentosError`) become one line on stderr and exit 2 (or their own code); a KeyboardInterrupt that
arrives before the runner installed its own handlers becomes exit 130. Nothing else is caught, so a
real bug still shows its traceback.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from agentos import __version__
from agentos.__main__ import exit_interrupted
from agentos.errors import AgentosError
from agentos.workflows.items import Workflow
from agentos.workflows.runner import build_command, configure_logging

#: command name -> module whose WORKFLOW it runs; imported only when that command is used,
#: so `agentos run` does not pay for loading the LLD workflows and their agents
WORKFLOW_MODULES = {
    "run": "agentos.workflows.command",
    "requirements": "agentos.workflows.requirements",
    "implement": "agentos.workflows.implement",
}


class WorkflowGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(WORKFLOW_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = WORKFLOW_MODULES.get(cmd_name)
        if module is None:
            return None
        workflow: Workflow = importlib.import_module(module).WORKFLOW
        return build_command(workflow)


@click.group(
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
    finally:
        # the run is over (or never started); a Ctrl+C now must not turn a clean exit into a
        # traceback from interpreter shutdown
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _invoke(command: click.Command, args: Sequence[str] | None, prog_name: str | None) -> NoReturn:
    try:
        command.main(
            args=list(args) if args is not None else None,
            prog_name=prog_name,
            standalone_mode=False,
        )
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        exit_interrupted()
    except AgentosError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        exit_interrupted()
    except BrokenPipeError:
        # stdout closed early (`agentos run ... | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    sys.exit(0)


def run_workflow_cli(workflow: Workflow, prog_name: str | None = None) -> NoReturn:
    """Entry point for a stand-alone script that runs one workflow."""
    invoke(build_command(workflow), prog_name=prog_name)


def main() -> NoReturn:
    invoke(cli, prog_name="agentos")
