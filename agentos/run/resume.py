"""`--resume RUN_DIR`: continue the same work, in the same run directory.

Resuming looks simple (skip what the journal says is done) and goes wrong in three quiet ways,
each of which costs a user paid agent work or, worse, reports work as done that never was:

* *Positions are not identities.* `agentos run` numbers its items by input line. Insert a line
  at the top of the list and every id shifts: skipping by id then counts a failed item as done
  and runs a done one again. So every item carries a `key`, what it *is* (for `agentos run` the
  command it runs, with the item substituted; for the LLD workflows the brief or LLD it works
  on), and the journal records it. Resume skips by key. An item keeps the id it had in the
  earlier pass, so its log, its audit trail (`items/<id>/attempt-<n>/`) and its attempt numbers
  simply continue; a new item whose positional id was taken by different work earlier gets a
  fresh one.
* *Another run's directory.* A run directory resumed by another command (`requirements`
  resuming a directory of `agentos run`, or `agentos run` with another command line) would mix
  two journals and overwrite the first run's summary. `run.json` records what the directory is
  for; a resume that does not match is refused, saying what differs.
* *A torn journal.* A crash mid-append leaves a partial last line. The reader skips (and
  reports) lines that are not records; the journal ends such a line before it appends again.

`plan_resume` is pure: given the items and the earlier journal it decides what runs, under which
id, with which attempt numbers, and what the summary reports from the earlier pass.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentos.errors import ConfigError
from agentos.item.ids import fresh_id
from agentos.item.workflow import Item
from agentos.run.about import ABOUT_FIELDS
from agentos.rundir.journal import read_journal, read_manifest
from agentos.rundir.statuses import Status
from agentos.usage.record import UsageLog

#: run.json entries of agentos.run.recorded: the options, compared there per option
RECORDED = ("params", "cwd")


@dataclass
class EarlierItem:
    """What the earlier passes of a run directory did to one item (by key)."""

    key: str
    id: str
    attempts: int = 0  # the highest attempt number
    tries: int = 0  # the attempts that counted (see ItemState.tries); the rest were requeued
    seconds: float = 0.0
    done: bool = False
    key_label: str | None = None
    error: str = ""
    seq: int = 0
    title: str = ""
    source: str = ""
    status: str = ""  # the last attempt's
    detail: str = ""  # how it ended when done ("Draft")
    outputs: dict[str, str] = field(default_factory=dict)  # what it produced, last said
    #: what its attempts spent: it counts toward the run's --budget when the run is resumed
    usage: UsageLog = field(default_factory=UsageLog)


@dataclass
class EarlierPasses:
    """What the journal says of the items of earlier passes."""

    items: dict[str, EarlierItem] = field(default_factory=dict)
    corrupt_lines: list[int] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        return {e.id for e in self.items.values()}


def read_earlier(run_dir: Path) -> EarlierPasses:
    """The journal is the truth about what was done; the earlier summary, when there is one,
    only adds the titles and sources the journal does not repeat."""
    journal = read_journal(run_dir)
    earlier = EarlierPasses(corrupt_lines=journal.corrupt_lines)
    described = _earlier_summary_rows(run_dir)
    for record in journal.records:
        item_id = str(record["item"])
        key = str(record.get("key") or item_id)  # journals of older versions have no key
        entry = earlier.items.get(key)
        if entry is None:
            row = described.get(item_id, {})
            entry = earlier.items[key] = EarlierItem(
                key, item_id, title=str(row.get("title", "")), source=str(row.get("source", ""))
            )
        if isinstance(record.get("seq"), int):
            entry.seq = record["seq"]
        attempt = record.get("attempt")
        if isinstance(attempt, int):
            entry.attempts = max(entry.attempts, attempt)
        if record.get("status") not in (Status.RATE_LIMITED, Status.REJECTED) or record.get(
            "final"
        ):
            entry.tries += 1
        runtime = record.get("runtime")
        if isinstance(runtime, (int, float)):
            entry.seconds += float(runtime)
        entry.key_label = record.get("key_label") or entry.key_label
        if "usage" in record:
            entry.usage.merge(UsageLog.from_json(record["usage"]))
        if isinstance(record.get("outputs"), dict):
            entry.outputs = {str(k): str(v) for k, v in record["outputs"].items()}
        entry.status = str(record.get("status") or entry.status)
        if record.get("status") == Status.DONE:
            entry.done, entry.error = True, ""
            entry.detail = str(record.get("detail") or "")
        elif not entry.done:
            entry.error = str(record.get("error") or "")
    return earlier


def _earlier_summary_rows(run_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        return {str(row["id"]): row for row in data["items"] if isinstance(row, dict)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def check_same_run(run_dir: Path, identity: dict[str, str]) -> None:
    """Refuse to resume `run_dir` with a run that is not the one it was made for."""
    recorded = read_manifest(run_dir)
    if recorded is None:
        if not (run_dir / "journal.jsonl").is_file():
            raise ConfigError(
                f"{run_dir} is not an agentos run directory (no journal.jsonl); "
                "pass the directory a previous run printed"
            )
        return  # made by an agentos that wrote no run.json: nothing to compare
    differences = [
        f"{name} {recorded.get(name)!r} there, {value!r} now"
        for name, value in identity.items()
        if recorded.get(name) != value
    ]
    differences += [
        f"{name} {recorded[name]!r} there, none now"
        for name in recorded
        if name not in identity and name not in ("agentos", "created", *ABOUT_FIELDS, *RECORDED)
    ]
    if differences:
        raise ConfigError(
            f"cannot resume {run_dir}: it belongs to another run ({'; '.join(differences)}); "
            "resume it with the same command, or start a new run without --resume"
        )


@dataclass
class ResumePlan:
    """What a resume runs, what it skips, and what the items' earlier attempts count."""

    pending: list[Item]  # to run, ids as in the earlier pass where the work is the same
    #: done in an earlier pass: skipped, and reported in the summary; so are the earlier items
    #: this input no longer lists (a workflow lists no item whose output exists, even when the
    #: attempt that wrote it was cut short before it was journaled as done)
    done_before: list[tuple[Item, EarlierItem]]
    attempts_before: dict[str, int]  # id -> attempts made in earlier passes
    #: id -> how many of those were queued again, uncounted (refused, bystanders)
    requeues_before: dict[str, int] = field(default_factory=dict)
    #: id -> what the earlier passes' attempts of a pending item spent
    usage_before: dict[str, UsageLog] = field(default_factory=dict)

    @property
    def done_count(self) -> int:
        return sum(1 for _, before in self.done_before if before.done)


def plan_resume(items: Iterable[Item], earlier: EarlierPasses) -> ResumePlan:
    items = list(items)
    plan = ResumePlan([], [], {})
    # an earlier id stays with its work, even where that work is not in this input any more
    used = earlier.ids
    assigned: set[str] = set()
    for item in items:
        key = item.key or item.id
        before = earlier.items.get(key)
        if before is not None:
            item = dataclasses.replace(item, id=before.id, key=key)
            if before.done:
                plan.done_before.append((item, before))
                continue
            plan.attempts_before[item.id] = before.attempts
            plan.requeues_before[item.id] = before.attempts - before.tries
            plan.usage_before[item.id] = before.usage
        elif item.id in used or item.id in assigned:
            item = dataclasses.replace(item, id=fresh_id(item.id, used | assigned), key=key)
        assigned.add(item.id)
        plan.pending.append(item)
    listed = {item.key for item, _ in plan.done_before} | {item.key for item in plan.pending}
    for before in earlier.items.values():
        if before.key not in listed:
            gone = Item(before.id, before.title, before.source, seq=before.seq, key=before.key)
            plan.done_before.append((gone, before))
    return plan


def summary_rows_from_earlier(done_before: list[tuple[Item, EarlierItem]]) -> list[dict[str, Any]]:
    """Done in an earlier pass: reported, marked as such, in the summary of this one."""
    return [
        {
            "id": item.id,
            "title": item.title,
            "source": item.source,
            "status": Status.DONE if before.done else before.status,
            "attempts": before.tries,
            "requeues": before.attempts - before.tries,
            "seconds": round(before.seconds, 3),
            "key": before.key_label,
            "error": "" if before.done else before.error,
            "earlier_pass": True,
            "seq": item.seq,
            "detail": before.detail if before.done else "",
            "outputs": before.outputs or None,
            "usage": before.usage.total.to_json() if before.usage.total.calls else None,
        }
        for item, before in done_before
    ]
