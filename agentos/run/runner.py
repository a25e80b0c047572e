"""The shared runner: one place that owns the options and the orchestration of every command.

    build_command(workflow) ─► click command: the workflow's own options + the shared ones
    run_workflow(workflow, params):
        prepare (agentos.run.plan): options → config → items → checks → the plan and its backend
          (nothing to do, or --dry-run: said, exit 0, nothing created or started)
        open_run (agentos.engine.session): handlers, run directory, journal, terminal, listener,
          the keys service, the batch  →  run.execute(): backend.run(run)
        finish (agentos.run.finish): summary table + summary.json → exit code (0, 1, 130, 143)

A workflow supplies `collect_items(config)` and `execute_item(item, ctx)`; it never sees any of the
above.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from agentos.engine.output.escape import escape_text
from agentos.engine.session import open_run
from agentos.errors import EXIT_OK
from agentos.item.workflow import Workflow
from agentos.run.finish import finish
from agentos.run.options import runner_options, workflow_params
from agentos.run.plan import prepare

if TYPE_CHECKING:
    from agentos.run.recorded import Invocation

log = logging.getLogger("agentos")


def build_command(workflow: Workflow) -> click.Command:
    @click.command(
        name=workflow.name,
        help=workflow.summary + ("\n\n" + workflow.epilog if workflow.epilog else ""),
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    @runner_options
    @click.pass_context
    def command(ctx: click.Context, **params: Any) -> None:
        from agentos.run.recorded import Invocation

        invocation = Invocation.from_click(ctx, params, workflow)
        code = run_workflow(workflow, params, invocation)
        if code != EXIT_OK:
            sys.exit(code)

    command.params[:0] = workflow_params(workflow.options)
    return command


def run_workflow(
    workflow: Workflow, params: dict[str, Any], invocation: Invocation | None = None
) -> int:
    """`params`: every option's value (with --resume, completed from the run directory by
    `Invocation.from_click`); `invocation`: what run.json records of them. Returns the exit
    code; raises the error that stopped the run, once its summary is written."""
    prepared = prepare(workflow, params, invocation)
    if prepared is None:
        return EXIT_OK
    with prepared.lock(), open_run(prepared.plan, prepared.backend, prepared.record) as run:
        run.execute()
        code = finish(prepared, run)
    if run.fatal is not None:
        raise run.fatal
    return code


def configure_logging(verbose: bool = False) -> None:
    """`agentos: warning: ...` lines on stderr for the parent's own notices (looked up at each
    record, so click's test runner, which swaps sys.stderr, sees them)."""
    logger = logging.getLogger("agentos")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.propagate = False


class _EchoHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        level = "warning: " if record.levelno >= logging.WARNING else ""
        # a notice may name a file of a cloned repository, or quote an item
        click.echo(f"agentos: {level}{escape_text(record.getMessage())}", err=True)
