"""The summary a run prints at its end: which rows a long run shows, how the totals line reads,
how long errors are cut, and the attempts column (tries that count, requeues apart)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.processes import agentos_argv, items_file, only_run_dir, run

from agentos.engine.scheduler import Scheduler
from agentos.item.workflow import Item
from agentos.run.summary import MAX_TABLE_ROWS, RunFacts, render_summary, summary_data
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.statuses import Status
from agentos.text import ELLIPSIS


def row(n: int, status: str = Status.DONE, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"item-{n}",
        "status": status,
        "attempts": 1,
        "seconds": 0.1,
        "error": "",
        "seq": n,
        **extra,
    }


def data(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["status"]] = totals.get(r["status"], 0) + 1
    return {
        "items": rows,
        "totals": totals,
        "seconds": 12.0,
        "run_dir": "runs/x",
        "usage": None,
        **extra,
    }


def table_ids(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if line.startswith("item-")]


def test_a_long_run_of_done_items_shows_rows_and_says_how_many_more() -> None:
    text = render_summary(data([row(n) for n in range(1, 5001)]))
    assert table_ids(text) == [f"item-{n}" for n in range(1, MAX_TABLE_ROWS + 1)]
    more = 5000 - MAX_TABLE_ROWS
    assert f"  ... {more:,} more rows ({more:,} done) in runs/x/summary.json" in text.splitlines()
    assert text.splitlines()[-1].startswith("5,000 items: 5,000 done in 12.0 s")


def test_a_long_run_lists_its_failures_first() -> None:
    rows = [row(n) for n in range(1, 5001)]
    rows[4000] = row(4001, Status.FAILED, error="boom")
    rows[10] = row(11, Status.NOT_RUN)
    rows[2500] = row(2501, "timeout", error="timed out")
    text = render_summary(data(rows))
    ids = table_ids(text)
    assert ids[:4] == ["item-4001", "item-2501", "item-11", "item-1"]
    assert len(ids) == MAX_TABLE_ROWS
    assert "failures are listed first" in text


def test_a_short_run_keeps_input_order() -> None:
    rows = [row(1), row(2, Status.FAILED, error="x"), row(3)]
    assert table_ids(render_summary(data(rows))) == ["item-1", "item-2", "item-3"]


def test_items_done_in_an_earlier_pass_are_said_of_the_done_ones() -> None:
    rows = [row(n, earlier_pass=True) for n in (1, 2, 3)] + [
        row(n, Status.NOT_RUN) for n in range(4, 13)
    ]
    line = render_summary(data(rows, skipped_already_done=3)).splitlines()[-1]
    assert line.startswith("12 items: 3 done in an earlier pass, 9 not run in 12.0 s")


def test_details_and_the_earlier_pass_share_one_parenthesis() -> None:
    rows = [row(n, detail="Approved", earlier_pass=n <= 2) for n in range(1, 13)]
    line = render_summary(data(rows, skipped_already_done=2)).splitlines()[-1]
    assert line.startswith("12 items: 12 done (12 Approved; 2 in an earlier pass) in 12.0 s")


def test_one_call_is_one_call() -> None:
    usage = {"calls": 1, "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.001}
    rows = [row(1, usage=usage)]
    text = render_summary(
        data(
            rows,
            usage={**usage, "by_group": {"a": {"calls": 1}, "b": {"calls": 2}}},
        )
    )
    assert "usage: 1 call, 10 in + 2 out tokens" in text
    assert (
        "(1 call)" in text and "(2 calls)" in text and "calls)" not in text.replace("2 calls)", "")
    )


def test_a_long_error_is_cut_at_a_word_with_an_ellipsis() -> None:
    error = (
        "command exited with status 1 after writing part of its output; stderr said: the "
        "disk is full and nothing more can be written"
    )
    text = render_summary(data([row(1, Status.FAILED, error=error)]))
    shown = text.splitlines()[1].split("  ")[-1]
    assert shown.endswith(ELLIPSIS) and not shown.endswith(";" + ELLIPSIS)
    assert not shown.endswith(" " + ELLIPSIS)
    word = shown.removesuffix(ELLIPSIS).split()[-1]
    assert word in error.split() or word + ";" in error.split()  # a whole word before the cut


# -- attempts: tries that count, and requeues apart
def _result(item: Item, attempt: int, status: str) -> AttemptResult:
    return AttemptResult(item.id, attempt, status, started=0.0, runtime=0.1, error=status)


def test_rate_limit_requeues_are_not_attempts() -> None:
    item = Item("a", "a", "x")
    scheduler = Scheduler([item], retries=1, max_rate_limit_waits=20)
    state = scheduler.states[0]
    for _ in range(9):  # nine refusals: each queued again, uncounted
        attempt = scheduler.start(scheduler.peek_ready(now=float("inf")))  # type: ignore[arg-type]
        scheduler.finish(state, _result(item, attempt, Status.RATE_LIMITED))
    attempt = scheduler.start(scheduler.peek_ready(now=float("inf")))  # type: ignore[arg-type]
    scheduler.finish(state, _result(item, attempt, Status.FAILED))
    attempt = scheduler.start(scheduler.peek_ready(now=float("inf")))  # type: ignore[arg-type]
    assert scheduler.finish(state, _result(item, attempt, Status.FAILED))
    assert (state.attempts, state.tries, state.requeues) == (11, 2, 9)

    summary = summary_data(
        scheduler.states,
        RunFacts(
            command="run",
            run_dir=Path("runs/x"),
            mode="parallel",
            workers=1,
            started=0.0,
            ended=1.0,
            exit_code=1,
            interrupted_by=None,
            skipped=0,
        ),
    )
    assert (summary["items"][0]["attempts"], summary["items"][0]["requeues"]) == (2, 9)
    lines = render_summary(summary).splitlines()
    assert lines[0].split()[:5] == ["item", "status", "attempts", "requeued", "seconds"]
    assert lines[1].split()[:4] == ["a", "failed", "2", "9"]


def test_no_requeued_column_when_nothing_was_requeued() -> None:
    assert "requeued" not in render_summary(data([row(1)]))


RATE_LIMITED_TWICE = (
    "n=$(cat count-$0 2>/dev/null || echo 0); echo $((n+1)) > count-$0; "
    'if [ "$n" -lt 2 ]; then echo "429 Too Many Requests" >&2; exit 75; fi; echo ok $0'
)


@pytest.mark.timeout(60)
def test_a_run_counts_tries_and_requeues_apart(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["a"])
    done = run(
        agentos_argv(
            "run", "--items", str(items), "--retries", "1", "--rate-limit-cooldown", "0.01",
            "--", "sh", "-c", RATE_LIMITED_TWICE,
        ),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((only_run_dir(tmp_path) / "summary.json").read_text())
    assert (summary["items"][0]["attempts"], summary["items"][0]["requeues"]) == (1, 2)


def test_a_resumed_item_keeps_its_tries_and_requeues_apart(tmp_path: Path) -> None:
    from agentos.run.resume import plan_resume, read_earlier, summary_rows_from_earlier

    records = [
        {"item": "a", "key": "a", "attempt": 1, "status": Status.RATE_LIMITED, "final": False},
        {"item": "a", "key": "a", "attempt": 2, "status": Status.FAILED, "final": False},
        # attempt 3: a bystander of a broken pool, never journaled
        {"item": "a", "key": "a", "attempt": 4, "status": "interrupted", "final": True},
        {"item": "b", "key": "b", "attempt": 1, "status": Status.RATE_LIMITED, "final": False},
        {"item": "b", "key": "b", "attempt": 2, "status": Status.DONE, "final": True},
    ]
    (tmp_path / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    plan = plan_resume([Item("a", "a", "x"), Item("b", "b", "x")], read_earlier(tmp_path))
    assert (plan.attempts_before, plan.requeues_before) == ({"a": 4}, {"a": 2})
    scheduler = Scheduler(
        plan.pending,
        attempts_before=plan.attempts_before,
        requeues_before=plan.requeues_before,
    )
    assert scheduler.states[0].tries == 2
    (done_b,) = summary_rows_from_earlier(plan.done_before)
    assert (done_b["attempts"], done_b["requeues"]) == (1, 1)
