"""`agentos report [RUN_DIR]`: write `report.html` about a run, during it or after it."""

from __future__ import annotations

from pathlib import Path

import click

from agentos.errors import ConfigError, UsageError
from agentos.status_command import resolve_run_dir
from agentos.workflows.options import _PATH
from agentos.workflows.parallel.journal import atomic_write_text


@click.command(name="report", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=_PATH, required=False)
@click.option(
    "-o",
    "--output",
    type=_PATH,
    help="Where to write the page (default: report.html in the run directory).",
)
def command(run_dir: Path | None, output: Path | None) -> None:
    """Write one self-contained HTML page about a run (the latest under .agentos/runs by
    default): summary table, timeline of attempts, calls and refusals, spend, options. It opens
    from disk with no network."""
    try:
        from agentos.report.page import render
    except ImportError:
        raise UsageError("agentos report needs plotly: pip install 'agentos[report]'") from None
    from agentos.report.data import RunRecord

    run_dir = resolve_run_dir(run_dir)
    target = output if output is not None else run_dir / "report.html"
    page = render(RunRecord.load(run_dir))
    try:
        atomic_write_text(target, page)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
    click.echo(str(target))


COMMAND = command
