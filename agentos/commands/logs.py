"""`agentos logs [RUN_DIR] ITEM [-f]`: one item's output, as its log in the run directory has it
(the latest run under ./.agentos/runs without RUN_DIR, as `status` and `report` do).

Each attempt's part of `logs/<id>.log` starts with a `==> <id> attempt N, started ... <==` line
the parent writes. `-f` follows the file (as `tail -f` does) until the journal records the item's
final status, the run is over, or Ctrl+C.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from agentos.engine.output.escape import escape_lines
from agentos.errors import ConfigError, UsageError
from agentos.run.options import SAFE_PATH
from agentos.rundir.journal import read_journal
from agentos.rundir.status import GONE, is_run_dir, resolve_run_dir, status_data
from agentos.rundir.statuses import Phase

POLL = 0.25


class _FinalWatch:
    """Reads the journal as it grows, looking for the item's final record."""

    def __init__(self, journal: Path, item_id: str) -> None:
        self.journal = journal
        self.item_id = item_id
        self.offset = 0
        self.partial = b""
        self.final = False

    def check(self) -> bool:
        try:
            with open(self.journal, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return False
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("item") == self.item_id:
                self.final = self.final or bool(record.get("final"))
        return self.final


def _known(run_dir: Path, item_id: str) -> bool:
    """Has the run heard of this item: a log, a journal record, or running now?"""
    if (run_dir / "logs" / f"{item_id}.log").is_file():
        return True
    if any(r.get("item") == item_id for r in read_journal(run_dir).records):
        return True
    return any(r.get("id") == item_id for r in status_data(run_dir).get("running") or [])


def _run_over(run_dir: Path) -> bool:
    data = status_data(run_dir)
    return data.get("phase") == Phase.DONE or data.get("state") == GONE


def _where(words: tuple[str, ...]) -> tuple[Path | None, str]:
    """(RUN_DIR or None, ITEM) from `[RUN_DIR] ITEM`."""
    if len(words) == 2:
        return Path(words[0]), words[1]
    if len(words) == 1 and "/" in words[0] and is_run_dir(Path(words[0])):
        # a run directory and no item: the id is what is missing, not the run
        raise UsageError(f"which item? agentos logs {words[0]} ITEM")
    if len(words) == 1:
        return None, words[0]
    raise UsageError(
        f"expected [RUN_DIR] ITEM, got {len(words)} arguments"
        if words
        else "which item? agentos logs [RUN_DIR] ITEM"
    )


@click.command(name="logs", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("words", nargs=-1, metavar="[RUN_DIR] ITEM")
@click.option("-f", "--follow", is_flag=True, help="Follow the log until the item is finished.")
@click.option(
    "--raw",
    is_flag=True,
    help="Print the log's bytes as they are, control characters and all (default: escaped).",
)
def command(words: tuple[str, ...], follow: bool, raw: bool) -> None:
    """Print one item's log (every attempt, each after a header line); with -f, follow it until
    the item's final status is in the journal or Ctrl+C. RUN_DIR defaults to the latest run under
    ./.agentos/runs. The log keeps the item's raw bytes; control characters (escape sequences,
    carriage returns) are shown escaped, as the run showed them, unless --raw."""
    where, item = _where(words)
    if where is not None:
        where = SAFE_PATH.convert(str(where), None, None)
    run_dir = resolve_run_dir(where)
    if "/" in item or item in ("", ".", ".."):
        raise ConfigError(f"{item!r} is not an item id")
    if not _known(run_dir, item):
        if not follow or _run_over(run_dir):
            raise ConfigError(f"no item {item} in {run_dir}")
        # an item still pending has no trace yet: following it means waiting for its start
        click.echo(f"agentos: {item} has not started yet; waiting for it", err=True)
        try:
            while not _known(run_dir, item):
                if _run_over(run_dir):
                    raise ConfigError(f"no item {item} in {run_dir} (the run ended)")
                time.sleep(POLL)
        except KeyboardInterrupt:
            return
    log = run_dir / "logs" / f"{item}.log"
    out = sys.stdout.buffer
    offset = 0
    partial = b""  # escaping works on whole lines: the rest waits for its newline

    def pump(final: bool = False) -> None:
        nonlocal offset, partial
        try:
            with open(log, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        if not raw:
            data = partial + data
            cut = len(data) if final else data.rfind(b"\n") + 1
            data, partial = escape_lines(data[:cut]), data[cut:]
        if data:
            out.write(data)
            out.flush()

    pump(final=not follow)
    if not follow:
        return
    watch = _FinalWatch(run_dir / "journal.jsonl", item)
    try:
        while True:
            # the journal first: output written before the final record is then read below
            done = watch.check() or _run_over(run_dir)
            pump(final=done)
            if done:
                return
            time.sleep(POLL)
    except KeyboardInterrupt:
        return
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


COMMAND = command
