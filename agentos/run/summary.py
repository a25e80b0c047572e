"""The end of a run: the summary table on stderr and `<run-dir>/summary.json`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from agentos.engine.scheduler import ItemState
from agentos.item.refusal_kinds import RefusalKind
from agentos.item.workflow import Item
from agentos.rundir.journal import atomic_write_text, json_text
from agentos.rundir.statuses import FINAL_STATUSES, Status
from agentos.text import cell, clip, display_width, ljust, plural, rjust
from agentos.usage.record import Tally, cost_text, count, money

MAX_TABLE_ROWS = 30
TITLE_WIDTH = 60


class RunFacts(NamedTuple):
    """What summary.json says of the run besides its items. `skipped`: items an earlier pass
    finished (--resume); `usage`: the run's (agentos.usage.account)."""

    command: str
    run_dir: Path
    mode: str
    workers: int
    started: float
    ended: float
    exit_code: int
    interrupted_by: str | None = None
    skipped: int = 0
    keys: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    resume_command: str | None = None


def summary_data(
    states: list[ItemState],
    facts: RunFacts,
    earlier: list[dict[str, Any]] | None = None,
    item_usage: Callable[[str], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """summary.json: the run's `facts` and a row per item. `earlier`: rows of the items an
    earlier pass finished (--resume); the summary covers every item of the run, in input order.
    `item_usage`: an item's usage, by id."""
    rows: list[dict[str, Any]] = [
        {
            "id": s.id,
            "title": s.item.title,
            "source": s.item.source,
            "status": s.status,
            "attempts": s.tries,
            "requeues": s.requeues,
            "seconds": round(s.seconds, 3),
            "key": s.key_label,
            "error": s.error,
            "earlier_pass": False,
            "seq": s.item.seq,
            "detail": s.detail,
            "outputs": s.outputs or None,
            "usage": item_usage(s.id) if item_usage is not None else None,
        }
        for s in states
    ]
    if earlier:
        rows = sorted([*rows, *earlier], key=lambda row: row["seq"])
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["status"]] = totals.get(row["status"], 0) + 1
    keys = facts.keys or []
    return {
        "command": facts.command,
        "run_dir": str(facts.run_dir),
        "mode": facts.mode,
        "workers": facts.workers,
        "started": round(facts.started, 3),
        "ended": round(facts.ended, 3),
        "seconds": round(facts.ended - facts.started, 3),
        "exit_code": facts.exit_code,
        "interrupted_by": facts.interrupted_by,
        "skipped_already_done": facts.skipped,
        "totals": totals,
        "keys": keys,
        "groups": key_groups(keys),
        "usage": facts.usage,
        "resume_command": facts.resume_command,
        "items": rows,
    }


def key_groups(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The key groups of the governor's key rows, once each: their keys, pace (requests/min)
    and where it comes from and why, refusals by kind (`noise_refusals` of the rate ones were
    taken as noise) and the seconds their calls were told to wait."""
    groups: dict[str, dict[str, Any]] = {}
    for row in keys:
        name = str(row.get("group") or row.get("label"))
        group = groups.setdefault(
            name,
            {
                "group": name,
                "keys": [],
                "calls": 0,
                "rpm": row.get("rpm"),
                "rpm_source": row.get("rpm_source"),
                "pace_reason": row.get("pace_reason") or "",
                "refusals": dict(row.get("refusals") or {}),
                "noise_refusals": row.get("noise_refusals") or 0,
                "waited_s": row.get("waited_s") or 0.0,
            },
        )
        group["keys"].append(row.get("label"))
        group["calls"] += row.get("calls") or 0
    return list(groups.values())


def group_rows(groups: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """(group, pace, refusals, waited, why) of the groups worth a line: refused, held or
    paced by what they learned."""
    rows: list[tuple[str, ...]] = []
    for g in groups:
        refusals = g.get("refusals") or {}
        waited = g.get("waited_s") or 0.0
        if not refusals and waited < 0.05 and g.get("rpm_source") != "learned":
            continue
        noise = g.get("noise_refusals") or 0
        said = [
            f"{n} {kind}" + (f" ({noise} as noise)" if kind == RefusalKind.RATE and noise else "")
            for kind, n in refusals.items()
        ]
        rpm = g.get("rpm")
        rows.append(
            (
                str(g["group"]),
                f"{rpm:g}/min" if isinstance(rpm, (int, float)) else "-",
                ", ".join(said) or "-",
                f"{waited:.1f} s",
                str(g.get("pace_reason") or ""),
            )
        )
    return rows


GROUP_HEADERS = ("group", "pace", "refusals", "calls waited", "why this pace")


def write_summary(run_dir: Path, data: dict[str, Any]) -> None:
    """Indented, but one item per line: json's indenting encoder is pure Python and took over a
    second for 4 000 items, the compact one is C."""
    head = {k: v for k, v in data.items() if k != "items"}
    text = json_text(head, indent=2)[:-2]
    rows = ",\n    ".join(json_text(item) for item in data["items"])
    text += f',\n  "items": [\n    {rows}\n  ]\n}}\n' if rows else ',\n  "items": []\n}\n'
    atomic_write_text(run_dir / "summary.json", text)


def text_table(
    rows: Sequence[Sequence[str]], headers: Sequence[str], right: frozenset[int] = frozenset()
) -> list[str]:
    """Plain aligned columns, two spaces apart, in display columns (a CJK character takes two);
    columns in `right` are right-aligned. Every cell is made one safe line (`text.cell`)."""
    table = [[cell(c) for c in row] for row in (headers, *rows)]
    widths = [max(display_width(r[i]) for r in table) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        cells = [
            rjust(c, w) if i in right else ljust(c, w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [fmt(row) for row in table]


#: the order rows are listed in when not all fit: what needs a look first
_LOOK_FIRST = (Status.FAILED, Status.TIMEOUT, Status.INTERRUPTED)
ERROR_WIDTH = 80


def _rows_to_show(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row when they fit; else MAX_TABLE_ROWS of them, failures first (failed, timed
    out, interrupted, then any other status, not run, done), each kind in input order."""
    if len(items) <= MAX_TABLE_ROWS:
        return items

    def rank(row: dict[str, Any]) -> int:
        status = row["status"]
        if status in _LOOK_FIRST:
            return _LOOK_FIRST.index(status)
        return {Status.NOT_RUN: len(_LOOK_FIRST) + 1, Status.DONE: len(_LOOK_FIRST) + 2}.get(
            status, len(_LOOK_FIRST)
        )

    order = sorted(range(len(items)), key=lambda n: (rank(items[n]), n))
    return [items[n] for n in order[:MAX_TABLE_ROWS]]


def _counted(rows: list[dict[str, Any]]) -> str:
    """`4,970 done, 2 failed`: how many rows have each status."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n:,} {status}" for status, n in counts.items())


def render_summary(data: dict[str, Any]) -> str:
    items = data["items"]
    shown = _rows_to_show(items)
    usage = data.get("usage") or {}
    spent = bool(usage.get("calls"))
    requeued = any(i.get("requeues") for i in shown)
    # what items produced (a branch and its commit), when a workflow says
    produced = any((i.get("outputs") or {}).get("summary") for i in shown)
    rows = [
        (
            i["id"],
            _status_cell(i),
            str(i["attempts"]),
            *((str(i.get("requeues") or ""),) if requeued else ()),
            f"{i['seconds']:.1f}",
            *(_usage_cells(i.get("usage")) if spent else ()),
            *((cell((i.get("outputs") or {}).get("summary", "")),) if produced else ()),
            clip(cell(i["error"] or ""), ERROR_WIDTH),
        )
        for i in shown
    ]
    headers: tuple[str, ...] = ("item", "status", "attempts")
    headers += ("requeued",) if requeued else ()
    headers += ("seconds", "tokens", "cost") if spent else ("seconds",)
    headers += ("result", "error") if produced else ("error",)
    right = frozenset(
        n for n, h in enumerate(headers) if h not in ("item", "status", "result", "error")
    )
    lines = text_table(rows, headers, right=right) if rows else []
    if len(shown) < len(items):
        ids = {id(row) for row in shown}
        hidden = [row for row in items if id(row) not in ids]
        where = Path(data["run_dir"]) / "summary.json"
        lines.append(
            f"  ... {plural(len(hidden), 'more row')} ({_counted(hidden)}) in {where}"
            + ("; failures are listed first" if shown[0]["status"] != Status.DONE else "")
        )
    lines += _usage_lines(usage)
    paced = group_rows(data.get("groups") or [])
    if paced:
        lines += text_table(paced, GROUP_HEADERS)
    lines.append(_totals_line(data))
    return "\n".join(lines)


def _totals_line(data: dict[str, Any]) -> str:
    """`12 items: 9 done (7 Approved, 2 Draft; 3 in an earlier pass), 3 failed in 4.2 s; ...`"""
    items = data["items"]
    totals = data["totals"]
    order = FINAL_STATUSES
    parts = [f"{totals[k]:,} {k}" for k in order if totals.get(k)]
    parts += [f"{v:,} {k}" for k, v in totals.items() if k not in order and v]
    done = totals.get(Status.DONE, 0)
    if done:
        details: dict[str, int] = {}
        for i in items:
            if i["status"] == Status.DONE and i.get("detail"):
                details[i["detail"]] = details.get(i["detail"], 0) + 1
        notes = [", ".join(f"{n:,} {d}" for d, n in details.items())] if details else []
        earlier = data.get("skipped_already_done") or 0
        if earlier and earlier >= done:
            parts[0] += " in an earlier pass"
        elif earlier:
            notes.append(f"{earlier:,} in an earlier pass")
        if notes:
            parts[0] += f" ({'; '.join(notes)})"
    line = f"{plural(len(items), 'item')}: {', '.join(parts) or 'none'}"
    line += f" in {data['seconds']:.1f} s; run dir: {data['run_dir']}"
    if data.get("interrupted_by"):
        line += f"; stopped by {data['interrupted_by']}"
        resume = data.get("resume_command") or f"--resume {data['run_dir']}"
        line += f"; to resume: {resume}"
    return line


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
    calls = plural(tally.calls, "call")
    cached = f" ({count(tally.cached_tokens)} cached)" if tally.cached_tokens else ""
    line = (
        f"usage: {calls}, {count(tally.input_tokens)} in{cached} + "
        f"{count(tally.output_tokens)} out tokens, {cost_text(tally)}"
    )
    if tally.unmetered_calls:
        line += f" ({plural(tally.unmetered_calls, 'call')} reported no token counts)"
    budget = usage.get("budget") or {}
    if budget.get("limit_usd") is not None:
        line += f" of --budget {money(budget['limit_usd'])}"
    lines = [line]
    for name in ("by_group", "by_key"):
        split = usage.get(name) or {}
        if len(split) > 1:
            parts = [
                f"{label} {cost_text(Tally.from_json(part))} "
                f"({plural(part.get('calls', 0), 'call')})"
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
        notes.append(cell(str(row["detail"])))
    return f"{row['status']} ({', '.join(notes)})" if notes else row["status"]


def render_dry_run(items: list[Item], skipped: int) -> str:
    rows = [(i.id, clip(cell(i.title), TITLE_WIDTH), cell(i.source)) for i in items]
    lines = text_table(rows, ("id", "title", "source"))
    tail = f"{plural(len(items), 'pending item')}"
    if skipped:
        tail += f" ({skipped:,} already done)"
    return "\n".join([*lines, tail])
