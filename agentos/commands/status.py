"""`agentos status [RUN_DIR]`: how a run is going, from another terminal, or how it ended.

Reads only the run directory (`state.json`, which the running parent rewrites about once a
second, else `summary.json`), so it needs no connection to the run and works after it ended or
died. A parent whose state says it is not done, and whose process is gone, ended without a
summary: killed, or its machine went down.
"""

from __future__ import annotations

import json
import math
import socket
import sys
import time
from pathlib import Path
from typing import Any

import click

from agentos.engine.output.escape import escape_text
from agentos.engine.output.waiting import countdown
from agentos.errors import ConfigError
from agentos.item.process_tree import pid_alive
from agentos.run.options import SAFE_PATH, Number
from agentos.run.summary import GROUP_HEADERS, group_rows, key_groups, text_table
from agentos.rundir.journal import json_text
from agentos.rundir.state import read_state
from agentos.rundir.statuses import Phase, Status
from agentos.text import plural
from agentos.usage.record import money

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


def _utc(epoch: float) -> str:
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


def _spend(usage: dict[str, Any] | None) -> str | None:
    if not usage:
        return None
    cost = usage.get("cost_usd")
    said = money(cost) if isinstance(cost, (int, float)) else "unknown"
    if usage.get("budget_usd") is not None:
        said += f" of {money(usage['budget_usd'])}"
    if usage.get("calls"):
        said += f" ({plural(usage['calls'], 'call')}"
        said += f", {plural(usage['tokens'], 'token')})" if usage.get("tokens") else ")"
    return said


def render(data: dict[str, Any], now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    if "command" not in data:
        return [f"run       {data['run_dir']}", f"state     {data['state']}"]
    lines = [
        f"run       {data['run_dir']}",
        f"command   {data['command']} (pid {data['pid']} on {data['host']})"
        if data.get("pid")
        else f"command   {data['command']}",
        f"started   {_utc(data['started'])} ({duration(now - data['started'])} ago)",
        f"elapsed   {duration(data['elapsed'])}",
        f"state     {data['state']}"
        + (f", exit {data['exit_code']}" if data.get("exit_code") is not None else ""),
        f"items     {data['items']}: {counts_text(data['counts'], data.get('details'))}",
    ]
    spend = _spend(data.get("usage"))
    if spend:
        lines.append(f"spend     {spend}")
    if data.get("items_per_minute"):
        rate = f"{data['items_per_minute']:.1f} items/min"
        if data.get("eta_seconds") is not None:
            rate += f", about {duration(data['eta_seconds'])} left"
        lines.append(f"rate      {rate}")
    if data["running"]:
        lines += ["", "running"]
        rows: list[tuple[str, ...]] = [
            (r["id"], str(r.get("attempt", "")), duration(r.get("elapsed")), r.get("key") or "-")
            for r in data["running"]
        ]
        lines += ["  " + line for line in text_table(rows, ("item", "attempt", "for", "key"))]
    if data.get("produced"):
        lines += ["", "produced"]
        rows = [(str(p["id"]), str(p["status"]), str(p["result"])) for p in data["produced"]]
        lines += ["  " + line for line in text_table(rows, ("item", "status", "result"))]
    if data["keys"]:
        lines += ["", "keys"]
        rows = [
            (
                str(k.get("label")),
                str(k.get("group") or k.get("label")),
                str(k.get("state") or "-"),
                str(k.get("calls") or 0),
                str(k.get("leases") or 0),
                _parked(k.get("parked_until")),
            )
            for k in data["keys"]
        ]
        headers = ("key", "group", "state", "calls", "items", "parked until")
        lines += ["  " + line for line in text_table(rows, headers, right=frozenset({3, 4}))]
        # the governor's pacing decisions per group: its pace, why, what was refused and waited
        paced = group_rows(key_groups(data["keys"]))
        if paced:
            lines += ["", "pacing"] + ["  " + line for line in text_table(paced, GROUP_HEADERS)]
    return lines


def _parked(until: Any) -> str:
    if isinstance(until, (int, float)):
        return time.strftime("%H:%M UTC", time.gmtime(until))
    return "for the run" if until == "run" else "-"


def runs_rows(root: Path = RUNS_ROOT, limit: int = 20) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for path in run_dirs(root)[-limit:]:
        data = status_data(path)
        if "command" not in data:
            rows.append(("-", "-", "-", "-", "-", "-", data["state"], path.name))
            continue
        cost = (data.get("usage") or {}).get("cost_usd")
        rows.append(
            (
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(data["started"])),
                str(data["command"]),
                duration(data["elapsed"]),
                counts_text(data["counts"], data.get("details")),
                "-" if data.get("exit_code") is None else str(data["exit_code"]),
                money(cost) if isinstance(cost, (int, float)) else "-",
                data["state"],
                path.name,
            )
        )
    return rows


@click.command(name="status", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=SAFE_PATH, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--watch",
    type=Number(min=0.2),
    is_flag=False,
    flag_value=2.0,
    default=None,
    metavar="[SECONDS]",
    help="Redraw every SECONDS (default 2) until Ctrl+C.",
)
@click.option(
    "--runs",
    "list_runs",
    is_flag=True,
    help="List recent runs, one line each (those under RUN_DIR when given).",
)
def command(run_dir: Path | None, as_json: bool, watch: float | None, list_runs: bool) -> None:
    """How a run is going, or how it ended: state, counts, running items and their keys, spend,
    rate and time left. RUN_DIR defaults to the latest run under ./.agentos/runs. --watch
    redraws until the run ends (or Ctrl+C)."""
    if list_runs:
        _list_runs(run_dir if run_dir is not None else RUNS_ROOT, as_json)
        return
    path = resolve_run_dir(run_dir)
    if watch is None:
        _show(path, as_json)
        return
    try:
        while True:
            if sys.stdout.isatty() and not as_json:
                click.echo("\x1b[H\x1b[2J", nl=False)  # home, clear: redraw in place
            if _show(path, as_json, lines=True):
                return
            time.sleep(watch)
    except KeyboardInterrupt:
        return  # Ctrl+C is how a watch ends: not a failure


def _list_runs(root: Path, as_json: bool) -> None:
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder of runs")
    if as_json:
        found = [status_data(path) for path in run_dirs(root)[-20:]]
        click.echo(json_text(found, indent=2))
        return
    rows = runs_rows(root)
    if not rows:
        raise ConfigError(f"no runs under {root}")
    headers = ("started (UTC)", "command", "took", "items", "exit", "spend", "state", "run")
    for line in text_table(rows, headers):
        click.echo(escape_text(line))


def _show(path: Path, as_json: bool, *, lines: bool = False) -> bool:
    """Print the status; True once the run is over. `lines`: JSON one object per line (what
    a script reading a watch wants)."""
    now = time.time()  # one clock for the figures and their rendering: "started 4s ago, 4s"
    data = status_data(path, now)
    if as_json:
        click.echo(json_text(data, indent=None if lines else 2))
    else:
        # titles, details and errors come from items and agents: shown, never obeyed
        click.echo(escape_text("\n".join(render(data, now)), multiline=True))
    sys.stdout.flush()
    return data.get("phase") in (Phase.DONE, Phase.GONE)


COMMAND = command
