"""Counts in messages agree with their nouns: "1 worker", "1 file", "2 files"."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from support.processes import REPO, agentos_argv, git_repo, run

from agentos.run.plan import effective_workers


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        (1, "using 1 worker: only 1 key is configured (asked for 4)"),
        (2, "using 2 workers: only 2 keys are configured (asked for 4)"),
    ],
)
def test_workers_capped_by_keys(caplog: pytest.LogCaptureFixture, keys: int, said: str) -> None:
    with caplog.at_level(logging.INFO):
        assert effective_workers(4, keys, 10) == keys
    assert [r.getMessage() for r in caplog.records] == [said]


ONE_FILE = """#!/bin/sh
cat >/dev/null
printf '### src/only.py\\n```python\\nprint("one")\\n```\\n'
"""
TWO_FILES = """#!/bin/sh
cat >/dev/null
printf '### src/a.py\\n```python\\nA = 1\\n```\\n\\n### src/b.py\\n```python\\nB = 2\\n```\\n'
"""


@pytest.mark.timeout(120)
@pytest.mark.slow  # agentos implement on a real repository, its tests run
@pytest.mark.parametrize(("answer", "said"), [(ONE_FILE, "1 file"), (TWO_FILES, "2 files")])
def test_implement_counts_the_files_it_wrote(tmp_path: Path, answer: str, said: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "demo-repo", repo)
    git_repo(repo)
    agent = tmp_path / "agent.sh"
    agent.write_text(answer)
    agent.chmod(0o755)
    done = run(
        agentos_argv("implement", "--repo", str(repo), "--implementer", f"cmd:{agent}",
                     "--test-cmd", "true"),
        cwd=repo,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wrote = [line for line in done.stderr.splitlines() if line.startswith("iteration 1: wrote ")]
    assert wrote and all(line.endswith(f" {said} from the answer") for line in wrote), wrote


def test_verbose_start_line_counts_right(tmp_path: Path) -> None:
    items = tmp_path / "items.txt"
    items.write_text("a\n")
    done = run(agentos_argv("run", "-v", "-j1", "--items", str(items), "--", "true"), cwd=tmp_path)
    assert done.returncode == 0
    assert "[agentos] 1 item, 1 worker, run dir " in done.stderr


def test_workers_capped_by_key_slots(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert effective_workers(8, 3, 10, 2) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "using 3 workers: the 2 keys allow 3 items at once (asked for 8; raise slots= or "
        "--key-slots for more)"
    ]


def test_one_call_and_one_token_in_status() -> None:
    from agentos.commands.status import _spend

    assert _spend({"calls": 1, "tokens": 1, "cost_usd": 0.5}) == "$0.50 (1 call, 1 token)"
    assert _spend({"calls": 2, "tokens": 1200, "cost_usd": 0.5}) == "$0.50 (2 calls, 1,200 tokens)"


def test_one_call_in_the_notification() -> None:
    from agentos.run.notify import message

    data = {
        "command": "run",
        "exit_code": 0,
        "totals": {"done": 1},
        "seconds": 1.0,
        "run_dir": "runs/x",
        "usage": {"calls": 1, "cost_usd": 0.01},
    }
    _, body = message(data, "1 item: 1 done", None)
    assert "spend: $0.01 (1 call)" in body.splitlines()


def test_one_call_of_unknown_usage_breaks_an_item_cap() -> None:
    from agentos.usage.budget import ItemLimits, OverBudget
    from agentos.usage.record import Call, Tally

    spent = Tally()
    spent.add(Call("m"), None)
    with pytest.raises(OverBudget, match=r": 1 call reported no usage$"):
        ItemLimits(tokens=100).check(spent)
    with pytest.raises(OverBudget, match=r": 1 call of unknown cost$"):
        ItemLimits(usd=1.0).check(spent)


def test_rate_limited_once_is_one_time() -> None:
    from agentos.engine.scheduler import Scheduler
    from agentos.item.workflow import Item
    from agentos.rundir.attempts import AttemptResult
    from agentos.rundir.statuses import Status

    scheduler = Scheduler([Item("a", "a", "x")], max_rate_limit_waits=0)
    state = scheduler.states[0]
    attempt = scheduler.start(state)
    result = AttemptResult("a", attempt, Status.RATE_LIMITED, started=0.0, runtime=0.1, error="429")
    assert scheduler.finish(state, result)
    assert state.error.startswith("rate limited 1 time (--max-rate-limit-waits 0)")


def test_a_budget_stop_counts_items_not_started() -> None:
    from agentos.usage.budget import BudgetReached, RunBudget

    reached = BudgetReached(RunBudget(1.0))
    reached.not_started = 1
    assert "1 item not started" in reached.format_message()
