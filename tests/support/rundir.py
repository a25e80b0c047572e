"""Reading what a run left in its run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_dir_of(where: Path) -> Path:
    """`where` if it is a run directory; for a folder agentos ran in, its latest run."""
    runs = where / ".agentos" / "runs"
    if not runs.is_dir():
        return where
    return sorted(runs.iterdir())[-1]


def journal(where: Path) -> list[dict[str, Any]]:
    """The attempt records of a run (see `run_dir_of`), in the order they were written."""
    lines = (run_dir_of(where) / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def summary(where: Path) -> dict[str, Any]:
    """The summary.json of a run (see `run_dir_of`)."""
    data: dict[str, Any] = json.loads((run_dir_of(where) / "summary.json").read_text())
    return data
