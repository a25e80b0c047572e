"""`<run-dir>/state.json`: what a running parent tells `agentos status` without a connection.

The parent rewrites it atomically (readers see a whole file, old or new) when something happens
(start, an attempt starting or ending, draining, the end) and at most about once a second while it
waits, so its `heartbeat` shows whether the parent is alive. It holds key labels only, never a key.
Writing it must never fail a run: an OSError is one warning, and the run goes on without it.

Each write also appends a sample to `metrics.jsonl` when something it counts changed (calls and
refusals per key group, spend, items running and finished), so that `agentos report` can draw
them over time. One line per change, and a pulse every minute: an idle overnight run adds little.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from agentos.beneath import open_beneath
from agentos.rundir.journal import atomic_write_text, json_text

STATE_FILE = "state.json"
METRICS_FILE = "metrics.jsonl"
#: a sample is appended at least this often even when nothing changed, so a chart shows idleness
PULSE = 60.0

#: the least time between two writes. Events (an attempt starting) would otherwise each cost a
#: write; a burst of short items then writes once and the next tick catches up
MIN_GAP = 0.1
#: the heartbeat: a waiting parent rewrites the file this often
HEARTBEAT = 1.0

log = logging.getLogger("agentos")


class StateWriter:
    def __init__(self, run_dir: Path, command: str, started: float) -> None:
        self.path = run_dir / STATE_FILE
        self.static = {
            "command": command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": round(started, 3),
        }
        self._last = 0.0  # monotonic time of the last write
        self.dirty = False
        self.broken = False
        self.metrics_path = run_dir / METRICS_FILE
        self._last_sample: dict[str, Any] | None = None
        self._last_sample_at = 0.0

    def due(self, *, event: bool) -> bool:
        """Should the caller build and write the state now? An event makes the state dirty; it
        is written at once unless a write was just made, in which case the next tick writes it."""
        if self.broken:
            return False
        if event:
            self.dirty = True
        gap = time.monotonic() - self._last
        return gap >= HEARTBEAT or (self.dirty and gap >= MIN_GAP)

    def write(self, data: dict[str, Any]) -> None:
        if self.broken:
            return
        self._last = time.monotonic()
        self.dirty = False
        state = {**self.static, "heartbeat": round(time.time(), 3), **data}
        try:
            # no fsync: the file is rewritten up to ten times a second, a reader that finds it
            # unreadable (after a power cut) falls back to summary.json, and each fsync cost a
            # small run ~1 ms here
            atomic_write_text(self.path, json_text(state) + "\n", durable=False)
            self._append_sample(state)
        except (OSError, TypeError, ValueError) as exc:
            self.broken = True
            log.warning(
                "cannot write %s (%s); `agentos status` will not see this run", self.path, exc
            )

    def _append_sample(self, state: dict[str, Any]) -> None:
        sample = metrics_sample(state)
        now = time.monotonic()
        if sample == self._last_sample and now - self._last_sample_at < PULSE:
            return
        self._last_sample, self._last_sample_at = sample, now
        line = json_text({"t": state["heartbeat"], **sample}) + "\n"
        # never through a link planted in a reused run directory
        fd = open_beneath(
            self.metrics_path.parent, METRICS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT
        )
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)


def metrics_sample(state: dict[str, Any]) -> dict[str, Any]:
    """What `metrics.jsonl` keeps of a state: counts, and calls and refusals per key group (a
    group's refusals and limit are on each of its keys' rows; calls are per key)."""
    groups: dict[str, dict[str, Any]] = {}
    for row in state.get("keys") or []:
        name = str(row.get("group") or row.get("label"))
        group = groups.setdefault(
            name, {"calls": 0, "refusals": row.get("refusals") or {}, "rpm": row.get("rpm")}
        )
        group["calls"] += row.get("calls") or 0
    usage = state.get("usage") or {}
    return {
        "phase": state.get("phase"),
        "running": len(state.get("running") or []),
        "counts": state.get("counts") or {},
        "calls": usage.get("calls"),
        "cost_usd": usage.get("cost_usd"),
        "groups": groups,
    }


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The run's samples, oldest first; lines that are not samples (a write cut short) skipped."""
    samples: list[dict[str, Any]] = []
    try:
        with open(run_dir / METRICS_FILE, encoding="utf-8") as f:
            for line in f:
                try:
                    sample = json.loads(line)
                except ValueError:
                    continue
                if isinstance(sample, dict) and isinstance(sample.get("t"), (int, float)):
                    samples.append(sample)
    except OSError:
        return []
    return samples


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The run's state, or None when it has none (an older agentos) or it is unreadable."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
