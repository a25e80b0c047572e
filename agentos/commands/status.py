"""`agentos status [RUN_DIR]`: how a run is going, from another terminal, or how it ended.

Reads only the run directory (`state.json`, which the running parent rewrites about once a
second, else `summary.json`), so it needs no connection to the run and works after it ended or
died. A parent whose state says it is not done, and whose process is gone, ended without a
summary: killed, or its machine went down.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from agentos.engine.output.escape import escape_text
from agentos.errors import ConfigError
from agentos.run.options import SAFE_PATH, Number
from agentos.run.summary import GROUP_HEADERS, group_rows, key_groups, text_table
from agentos.rundir.journal import json_text
from agentos.rundir.status import (
    RUNS_ROOT,
    counts_text,
    duration,
    resolve_run_dir,
    run_dirs,
    status_data,
    utc,
)
from agentos.rundir.statuses import Phase
from agentos.text import plural
from agentos.usage.record import money


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
        f"started   {utc(data['started'])} ({duration(now - data['started'])} ago)",
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
