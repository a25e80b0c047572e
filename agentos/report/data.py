"""What a report shows, read from a run directory; no plotting here.

Everything comes from files the run wrote as it went (the journal, one record per attempt;
`metrics.jsonl`; the logs) or at its end (`summary.json`), so a report can be made of a run that
is still going, or whose parent was killed: such a run has no summary, and its items' rows are
built from the journal instead.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentos.item.ids import is_valid_id
from agentos.rundir.journal import read_journal, read_manifest
from agentos.rundir.state import read_metrics, read_state
from agentos.rundir.statuses import FAILED_ATTEMPTS, Status

#: log lines shown under each failed item
TAIL_LINES = 20


@dataclass(frozen=True)
class AttemptRow:
    """One attempt as the report shows it."""

    item: str
    attempt: int
    status: str
    started: float  # epoch seconds
    runtime: float
    key_label: str | None
    worker_pid: int | None
    error: str
    refusal: str
    calls: int
    cost_usd: float | None
    seq: int = 0

    @property
    def ended(self) -> float:
        return self.started + self.runtime


@dataclass
class RunRecord:
    """What the report reads of one run directory."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any] | None
    state: dict[str, Any] | None
    attempts: list[AttemptRow]
    samples: list[dict[str, Any]]
    corrupt_lines: int = 0
    tails: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        journal = read_journal(path)
        summary = _json(path / "summary.json")
        record = cls(
            path=path,
            manifest=read_manifest(path) or {},
            summary=summary if isinstance(summary, dict) else None,
            state=read_state(path),
            attempts=[a for r in journal.records if (a := _attempt(r)) is not None],
            samples=read_metrics(path),
            corrupt_lines=len(journal.corrupt_lines),
        )
        # only ids that name a log: an edited summary must not make the page quote other files
        record.tails = {
            row["id"]: log_tail(path, row["id"])
            for row in record.failed_items()
            if isinstance(row.get("id"), str) and is_valid_id(row["id"])
        }
        return record

    # -- when
    @property
    def started(self) -> float:
        for source in (self.summary, self.state):
            if source and isinstance(source.get("started"), (int, float)):
                return float(source["started"])
        if self.attempts:
            return min(a.started for a in self.attempts)
        return float(self.manifest.get("created") or 0.0)

    @property
    def ended(self) -> float | None:
        if self.summary and isinstance(self.summary.get("ended"), (int, float)):
            return float(self.summary["ended"])
        return None

    @property
    def last_seen(self) -> float:
        """The end, or for a run without a summary the latest thing it wrote."""
        moments = [self.started, *(a.ended for a in self.attempts)]
        moments += [s["t"] for s in self.samples]
        if self.state and isinstance(self.state.get("heartbeat"), (int, float)):
            moments.append(float(self.state["heartbeat"]))
        return self.ended if self.ended is not None else max(moments)

    @property
    def command(self) -> str:
        for source in (self.summary, self.state):
            if source and source.get("command"):
                return str(source["command"])
        return str(self.manifest.get("workflow") or "run")

    # -- items
    def items(self) -> list[dict[str, Any]]:
        """The summary's rows; for a run without one (still going, or its parent died), one row
        per item of the journal, from its latest attempt."""
        if self.summary and isinstance(self.summary.get("items"), list):
            return [row for row in self.summary["items"] if isinstance(row, dict)]
        latest: dict[str, AttemptRow] = {}
        attempts: dict[str, int] = {}
        seconds: dict[str, float] = {}
        seq = {a.item: a.seq for a in self.attempts}
        for a in self.attempts:
            latest[a.item] = a
            attempts[a.item] = max(attempts.get(a.item, 0), a.attempt)
            seconds[a.item] = seconds.get(a.item, 0.0) + a.runtime
        rows = [
            {
                "id": item,
                "title": "",
                "status": a.status,
                "attempts": attempts[item],
                "seconds": round(seconds[item], 3),
                "key": a.key_label,
                "error": a.error,
                "usage": {"calls": a.calls, "cost_usd": a.cost_usd} if a.calls else None,
                "seq": seq.get(item, 0),
            }
            for item, a in latest.items()
        ]
        # the attempts running at the parent's last word: still running, or cut off with it
        gone = self.parent_gone
        for running in (self.state or {}).get("running") or []:
            if not isinstance(running, dict) or str(running.get("id")) in latest:
                continue
            item = str(running.get("id"))
            rows.append(
                {
                    "id": item,
                    "title": "",
                    "status": Status.INTERRUPTED if gone else Status.RUNNING,
                    "attempts": running.get("attempt") or 1,
                    "seconds": 0.0,
                    "key": running.get("key"),
                    "error": "the parent ended without a summary" if gone else "",
                    "usage": None,
                    "seq": seq.get(item, 0),
                }
            )
        return sorted(rows, key=lambda row: (row["seq"] or float("inf"), row["id"]))

    def failed_items(self) -> list[dict[str, Any]]:
        return [row for row in self.items() if row.get("status") in FAILED_ATTEMPTS]

    def totals(self) -> dict[str, int]:
        if self.summary and isinstance(self.summary.get("totals"), dict):
            return dict(self.summary["totals"])
        counts = (self.state or {}).get("counts")
        if isinstance(counts, dict) and counts:  # with the items running and still pending
            return {str(k): int(v) for k, v in counts.items() if isinstance(v, int) and v}
        totals: dict[str, int] = {}
        for row in self.items():
            totals[row["status"]] = totals.get(row["status"], 0) + 1
        return totals

    @property
    def parent_gone(self) -> bool:
        """A run without a summary whose parent process no longer runs (on this machine)."""
        from agentos.rundir.status import GONE, status_data

        return self.summary is None and status_data(self.path).get("state") == GONE

    @property
    def usage(self) -> dict[str, Any] | None:
        if self.summary and isinstance(self.summary.get("usage"), dict):
            return dict(self.summary["usage"])
        return None

    @property
    def keys(self) -> list[dict[str, Any]]:
        for source in (self.summary, self.state):
            if source and isinstance(source.get("keys"), list) and source["keys"]:
                return [row for row in source["keys"] if isinstance(row, dict)]
        return []

    @property
    def budget(self) -> float | None:
        options = self.manifest.get("options")
        value = options.get("budget") if isinstance(options, dict) else None
        return float(value) if isinstance(value, (int, float)) else None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _attempt(record: dict[str, Any]) -> AttemptRow | None:
    try:
        usage = record.get("usage") if isinstance(record.get("usage"), dict) else {}
        cost = usage.get("cost_usd") if usage else None
        return AttemptRow(
            item=str(record["item"]),
            attempt=int(record.get("attempt") or 1),
            status=str(record.get("status") or "?"),
            started=float(record["started"]),
            runtime=max(0.0, float(record.get("runtime") or 0.0)),
            key_label=str(record["key_label"]) if record.get("key_label") else None,
            worker_pid=record.get("worker_pid")
            if isinstance(record.get("worker_pid"), int)
            else None,
            error=str(record.get("error") or ""),
            refusal=str(record.get("refusal") or ""),
            calls=int(usage.get("calls") or 0) if usage else 0,
            cost_usd=float(cost) if isinstance(cost, (int, float)) else None,
            seq=record["seq"] if isinstance(record.get("seq"), int) else 0,
        )
    except (KeyError, TypeError, ValueError):
        return None  # a record written by hand or cut short: the report shows the rest


def log_tail(run_dir: Path, item_id: str, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of the item's last attempt (its log holds every attempt, each after
    a `==> ... <==` header line)."""
    if "/" in item_id or item_id in ("", ".", ".."):
        return []
    tail: deque[str] = deque(maxlen=lines)
    try:
        with open(run_dir / "logs" / f"{item_id}.log", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("==> ") and line.rstrip().endswith(" <=="):
                    tail.clear()  # a new attempt: only the last one's lines count
                    continue
                tail.append(line.rstrip("\n"))
    except OSError:
        return []
    return list(tail)
