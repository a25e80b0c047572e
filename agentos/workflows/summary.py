"""The end of a run: the summary table on stderr and `<run-dir>/summary.json`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentos.usage.record import Tally, cost_text, count, money
from agentos.workflows.items import Item
from agentos.workflows.parallel.attempt import DONE
from agentos.workflows.parallel.escape import escape_text
from agentos.workflows.parallel.journal import atomic_write_text
from agentos.workflows.parallel.scheduler import ItemState

MAX_TABLE_ROWS = 30


def summary_data(
    states: list[ItemState],
    *,
    command: str,
    run_dir: Path,
    mode: str,
    workers: int,
    started: float,
    ended: float,
    exit_code: int,
    interrupted_by: str | None,
    skipped: int,
    keys: list[dict[str, Any]] | None = None,
    earlier: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    item_usage: Callable[[str], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """`earlier`: rows of the items an earlier pass finished (--resume); the summary covers every
    item of the run, in input order. `usage`: the run's (agentos.usage.account); `item_usage`:
    an item's, by id."""
    rows: list[dict[str, Any]] = [
        {
            "id": s.id,
            "title": s.item.title,
            "source": s.item.source,
            "status": s.status,
            "attempts": s.attempts,
            "seconds": round(s.seconds, 3),
            "key": s.key_label,
            "error": s.error,
            "earlier_pass": False,
            "seq": s.item.seq,
            "detail": s.detail,
            "usage": item_usage(s.id) if item_usage is not None else None,
        }
        for s in states
    ]
    if earlier:
        rows = sorted([*rows, *earlier], key=lambda row: row["seq"])
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["status"]] = totals.get(row["status"], 0) + 1
    return {
        "command": command,
        "run_dir": str(run_dir),
        "mode": mode,
        "workers": workers,
        "started": round(started, 3),
        "ended": round(ended, 3),
        "seconds": round(ended - started, 3),
        "exit_code": exit_code,
        "interrupted_by": interrupted_by,
        "skipped_already_done": skipped,
        "totals": totals,
        "keys": keys or [],
        "usage": usage,
        "items": rows,
    }


def write_summary(run_dir: Path, data: dict[str, Any]) -> None:
    """Indented, but one item per line: json's indenting encoder is pure Python and took over a
    second for 4 000 items, the compact one is C."""
    head = {k: v for k, v in data.items() if k != "items"}
    text = json.dumps(head, indent=2, ensure_ascii=False)[:-2]
    rows = ",\n    ".join(json.dumps(item, ensure_ascii=False) for item in data["items"])
    text += f',\n  "items": [\n    {rows}\n  ]\n}}\n' if rows else ',\n  "items": []\n}\n'
    atomic_write_text(run_dir / "summary.json", text)


def _table(
    rows: Sequence[Sequence[str]], headers: Sequence[str], right: frozenset[int] = frozenset()
) -> list[str]:
    """Plain aligned columns, two spaces apart; columns in `right` are right-aligned."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def fmt(row: Sequence[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [fmt(headers), *(fmt(r) for r in rows)]


def render_summary(data: dict[str, Any]) -> str:
    items = data["items"]
    shown = items
    note = ""
    if len(items) > MAX_TABLE_ROWS:
        shown = [i for i in items if i["status"] != DONE][:MAX_TABLE_ROWS]
        hidden = len(items) - len(shown)
        note = f"  ({hidden} more rows in {Path(data['run_dir']) / 'summary.json'})"
    usage = data.get("usage") or {}
    spent = bool(usage.get("calls"))
    rows = [
        (
            i["id"],
            _status_cell(i),
            str(i["attempts"]),
            f"{i['seconds']:.1f}",
            *(_usage_cells(i.get("usage")) if spent else ()),
            escape_text(i["error"] or "")[:80],  # an item's words: shown, never obeyed
        )
        for i in shown
    ]
    headers: tuple[str, ...] = ("item", "status", "attempts", "seconds")
    headers += ("tokens", "cost", "error") if spent else ("error",)
    right = frozenset({2, 3, 4, 5}) if spent else frozenset({2, 3})
    lines = _table(rows, headers, right=right) if rows else []
    if note:
        lines.append(note)
    lines += _usage_lines(usage)
    totals = data["totals"]
    order = ["done", "failed", "timeout", "interrupted", "not run"]
    parts = [f"{totals[k]} {k}" for k in order if totals.get(k)]
    details: dict[str, int] = {}
    for i in items:
        if i.get("detail"):
            details[i["detail"]] = details.get(i["detail"], 0) + 1
    if details and parts and parts[0].endswith(" done"):
        parts[0] += " (" + ", ".join(f"{n} {d}" for d, n in details.items()) + ")"
    parts += [f"{v} {k}" for k, v in totals.items() if k not in order]
    line = f"{len(items)} item{'s' if len(items) != 1 else ''}: {', '.join(parts)}"
    if data.get("skipped_already_done"):
        line += f" ({data['skipped_already_done']} of them in an earlier pass)"
    line += f" in {data['seconds']:.1f} s; run dir: {data['run_dir']}"
    if data.get("interrupted_by"):
        line += f"; stopped by {data['interrupted_by']}, rerun with --resume {data['run_dir']}"
    lines.append(line)
    return "\n".join(lines)


def _usage_cells(usage: dict[str, Any] | None) -> tuple[str, str]:
    """(tokens, cost) of an item's row."""
    if not usage or not usage.get("calls"):
        return "", ""
    tally = Tally.from_json(usage)
    tokens = count(tally.tokens) + ("+?" if tally.unmetered_calls else "")
    return tokens, cost_text(tally)


def _usage_lines(usage: dict[str, Any]) -> list[str]:
    """`usage: 8 calls, 9,120 in (512 cached) + 2,310 out tokens, $0.0021`; the split by group
    or key when there is more than one; the models that had no price."""
    if not usage.get("calls"):
        return []
    tally = Tally.from_json(usage)
    calls = f"{count(tally.calls)} call{'s' if tally.calls != 1 else ''}"
    cached = f" ({count(tally.cached_tokens)} cached)" if tally.cached_tokens else ""
    line = (
        f"usage: {calls}, {count(tally.input_tokens)} in{cached} + "
        f"{count(tally.output_tokens)} out tokens, {cost_text(tally)}"
    )
    if tally.unmetered_calls:
        n = tally.unmetered_calls
        line += f" ({n} call{'s' if n != 1 else ''} reported no token counts)"
    budget = usage.get("budget") or {}
    if budget.get("limit_usd") is not None:
        line += f" of --budget {money(budget['limit_usd'])}"
    lines = [line]
    for name in ("by_group", "by_key"):
        split = usage.get(name) or {}
        if len(split) > 1:
            parts = [
                f"{label} {cost_text(Tally.from_json(part))} ({count(part.get('calls', 0))} calls)"
                for label, part in split.items()
            ]
            lines.append(f"  {name.replace('_', ' ')}: {', '.join(parts)}")
            break  # by group when it says more than by key; else by key
    if usage.get("unpriced_models"):
        lines.append(
            "  no price known for: "
            + ", ".join(usage["unpriced_models"])
            + " (their cost is unknown; give it with --prices FILE)"
        )
    return lines


def _status_cell(row: dict[str, Any]) -> str:
    notes = ["earlier pass"] if row.get("earlier_pass") else []
    if row.get("detail"):
        notes.append(escape_text(str(row["detail"])))
    return f"{row['status']} ({', '.join(notes)})" if notes else row["status"]


def render_dry_run(items: list[Item], skipped: int) -> str:
    rows = [(i.id, escape_text(i.title)[:60], escape_text(i.source)) for i in items]
    lines = _table(rows, ("id", "title", "source"))
    tail = f"{len(items)} pending item{'s' if len(items) != 1 else ''}"
    if skipped:
        tail += f" ({skipped} already done)"
    return "\n".join([*lines, tail])
