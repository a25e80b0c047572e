"""Reading what a run left in its run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def journal(run_dir: Path) -> list[dict[str, Any]]:
    """The run's attempt records, in the order they were written."""
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json."""
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return data
