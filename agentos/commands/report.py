"""`agentos report [RUN_DIR]`: write `report.html` about a run, during it or after it."""

from __future__ import annotations

from pathlib import Path

import click

from agentos.errors import ConfigError, UsageError
from agentos.run.options import SAFE_PATH
from agentos.rundir.journal import atomic_write_text
from agentos.rundir.status import resolve_run_dir


@click.command(name="report", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=SAFE_PATH, required=False)
@click.option(
    "-o",
    "--output",
    type=SAFE_PATH,
    help="Where to write the page (default: report.html in the run directory; - for stdout).",
)
def command(run_dir: Path | None, output: Path | None) -> None:
    """Write one self-contained HTML page about a run (the latest under .agentos/runs by
    default): summary table, timeline of attempts, calls and refusals, spend, options. It opens
    from disk with no network."""
    try:
        from agentos.report.page import render
    except ImportError:
        raise UsageError(
            "agentos report needs plotly: pip install 'agentos-batch[report]'"
        ) from None
    from agentos.report.data import RunRecord

    run_dir = resolve_run_dir(run_dir)
    if output is not None and str(output) == "-":
        click.echo(render(RunRecord.load(run_dir)), nl=False)
        return
    target = output if output is not None else run_dir / "report.html"
    check_target(target)
    page = render(RunRecord.load(run_dir))
    try:
        atomic_write_text(target, page)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
    click.echo(str(target))


def check_target(target: Path) -> None:
    """The page replaces `target` whole (written beside it, then renamed over it), so `target`
    must be a regular file or nothing: renamed over /dev/null, a page would replace the device
    for the whole machine."""
    if target.exists() and not target.is_file():
        raise UsageError(f"-o {target}: not a regular file; give a file path (or - for stdout)")
    if not target.parent.is_dir():
        raise UsageError(f"-o {target}: folder {target.parent} does not exist")


COMMAND = command
