"""What a run directory says of its run, read one way for `agentos status`, `logs` and `report`.

`status_data` merges state.json (the parent's last word, with its heartbeat), summary.json (the
end) and whether the parent still lives (on this machine) into one record; `counts_text` and
`duration` are its words. A parent gone without a summary is said so (`GONE`), and what it had
running or waiting is counted as interrupted or not run, as a summary would.
"""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path
from typing import Any

from agentos.errors import ConfigError
from agentos.item.process_tree import pid_alive
from agentos.rundir.state import read_state
from agentos.rundir.statuses import Phase, Status
from agentos.text import countdown

RUNS_ROOT = Path(".agentos/runs")
_RUN_FILES = ("state.json", "journal.jsonl", "run.json", "summary.json")
#: a parent on another machine cannot be asked whether it lives; this long without a heartbeat
#: and it is reported as silent
STALE_REMOTE = 30.0

_STOPPED = {
    "SIGINT": "stopped by SIGINT",
    "SIGTERM": "stopped by SIGTERM",
    "budget": "out of budget",
    "quota": "out of quota",
    "error": "stopped by an error",
}
GONE = "ended without a summary (parent gone)"
_COUNT_ORDER = (
    Status.DONE,
    Status.FAILED,
    Status.TIMEOUT,
    Status.RUNNING,
    Status.PENDING,
    Status.INTERRUPTED,
    Status.NOT_RUN,
)


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in _RUN_FILES)


def _started(path: Path) -> float:
    state = read_state(path)
    if state is not None and isinstance(state.get("started"), (int, float)):
        return float(state["started"])
    return path.stat().st_mtime


def run_dirs(root: Path = RUNS_ROOT) -> list[Path]:
    """The runs under `root`, oldest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if is_run_dir(p)), key=_started)


def resolve_run_dir(run_dir: Path | None) -> Path:
    if run_dir is None:
        runs = run_dirs()
        if not runs:
            raise ConfigError(f"no runs under ./{RUNS_ROOT}; pass a run directory")
        return runs[-1]
    if not is_run_dir(run_dir):
        raise ConfigError(f"{run_dir} is not an agentos run directory")
    return run_dir


def duration(value: float | None) -> str:
    """42s, 4m12s, 1h05m; - when unknown."""
    return "-" if value is None else countdown(value)


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _from_summary(run_dir: Path) -> dict[str, Any] | None:
    """A state for a run that left a summary but no state.json (an older agentos)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict):
        return None
    usage = summary.get("usage") or {}
    return {
        "command": summary.get("command"),
        "started": summary.get("started"),
        "heartbeat": summary.get("ended"),
        "phase": Phase.DONE,
        "workers": summary.get("workers"),
        "counts": summary.get("totals") or {},
        "details": details_of(summary.get("items")),
        "produced": [
            {"id": row.get("id"), "status": row.get("status"), "result": row["outputs"]["summary"]}
            for row in summary.get("items") or []
            if isinstance(row, dict)
            and isinstance(row.get("outputs"), dict)
            and row["outputs"].get("summary")
        ],
        "running": [],
        "usage": {"calls": usage.get("calls"), "cost_usd": usage.get("cost_usd")}
        if usage
        else None,
        "keys": summary.get("keys") or [],
        "exit_code": summary.get("exit_code"),
        "stop_reason": summary.get("interrupted_by"),
    }


def details_of(items: Any) -> dict[str, int]:
    """What a workflow said of the done items among summary rows: {"Draft": 5, ...}."""
    details: dict[str, int] = {}
    for row in items if isinstance(items, list) else []:
        if isinstance(row, dict) and row.get("status") == Status.DONE and row.get("detail"):
            details[str(row["detail"])] = details.get(str(row["detail"]), 0) + 1
    return details


def status_data(run_dir: Path, now: float | None = None) -> dict[str, Any]:
    """Everything `status` shows, as `--json` prints it."""
    now = time.time() if now is None else now
    state = read_state(run_dir) or _from_summary(run_dir)
    if state is None:
        return {"run_dir": str(run_dir), "state": "unknown (no state.json: not started yet?)"}
    phase = state.get("phase")
    started = state.get("started") or now
    heartbeat = state.get("heartbeat") or started
    alive = None
    if phase == Phase.DONE:
        reason = state.get("stop_reason")
        said = _STOPPED.get(str(reason), str(reason)) if reason else "done"
        ended: float | None = heartbeat
    else:
        ended = None
        said = str(phase)
        if state.get("host") == socket.gethostname() and isinstance(state.get("pid"), int):
            alive = pid_alive(state["pid"])
            if not alive:
                said, ended = GONE, heartbeat
        elif now - heartbeat > STALE_REMOTE:
            said += f" (no heartbeat for {duration(now - heartbeat)} from {state.get('host')})"
    elapsed = (ended if ended is not None else now) - started
    counts: dict[str, int] = dict(state.get("counts") or {})
    if said == GONE:
        # nothing runs or waits under a parent that is gone: what the state file last said
        # was running was cut off with it, and what waited will not run (as a summary says)
        for was, now_is in (
            (Status.RUNNING, Status.INTERRUPTED),
            (Status.PENDING, Status.NOT_RUN),
        ):
            if counts.get(was):
                counts[now_is] = counts.get(now_is, 0) + counts.pop(was)
    finished = sum(counts.get(s, 0) for s in (Status.DONE, Status.FAILED, Status.TIMEOUT))
    rate = finished / (elapsed / 60) if finished and elapsed > 0 else None
    left = counts.get(Status.PENDING, 0) + counts.get(Status.RUNNING, 0)
    eta = left / rate * 60 if rate and ended is None and left else None
    running = [
        {**r, "elapsed": round(now - r["started"], 1) if r.get("started") else None}
        for r in (state.get("running") or [])
        if ended is None
    ]
    return {
        "run_dir": str(run_dir),
        "command": state.get("command"),
        "pid": state.get("pid"),
        "host": state.get("host"),
        "started": started,
        "heartbeat": heartbeat,
        # down to a tenth: shown in whole seconds, it must never pass "started N s ago"
        "elapsed": math.floor(elapsed * 10) / 10,
        "state": said,
        "phase": phase if said != GONE else Phase.GONE,
        "parent_alive": alive,
        "workers": state.get("workers"),
        "items": state.get("items", sum(counts.values())),
        "counts": counts,
        "details": state.get("details") or {},
        "produced": state.get("produced") or [],
        "running": running,
        "keys": state.get("keys") or [],
        "usage": state.get("usage"),
        "items_per_minute": round(rate, 2) if rate else None,
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "exit_code": state.get("exit_code"),
        "stop_reason": state.get("stop_reason"),
    }


def counts_text(counts: dict[str, int], details: dict[str, int] | None = None) -> str:
    """ "12 done (5 Draft, 7 Approved), 1 failed": `details`, what a workflow said of its done
    items, beside the done count, as the summary line has it."""
    order = [s for s in _COUNT_ORDER if counts.get(s)] + sorted(
        s for s in counts if s not in _COUNT_ORDER and counts[s]
    )
    parts = [f"{counts[s]:,} {s}" for s in order]
    if details and counts.get(Status.DONE):
        said = ", ".join(f"{n:,} {d}" for d, n in details.items())
        parts[order.index(Status.DONE)] += f" ({said})"
    return ", ".join(parts) or "none"
