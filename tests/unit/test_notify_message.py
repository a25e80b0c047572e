"""What a notification says and what it keeps out: the message of a run that ran out of budget,
URLs shown by scheme only and redacted, a missing apprise named as the extra to install."""

from __future__ import annotations

import sys

import pytest

from agentos.errors import UsageError
from agentos.run.notify import check_urls, redact, scheme_of

PASSWORD = "pw0Secret9"
PATH_TOKEN = "T0kenInPath42"


def test_a_missing_apprise_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise now raises ImportError
    with pytest.raises(UsageError, match=r"pip install 'agentos-batch\[notify\]'"):
        check_urls(["json://localhost/"])
    assert check_urls([]) is None  # without --notify apprise is not needed


def test_urls_are_shown_by_scheme_and_redacted() -> None:
    url = f"ntfy://user:{PASSWORD}@ntfy.example/{PATH_TOKEN}?priority=high"
    assert scheme_of(url) == "ntfy://"
    assert scheme_of(PASSWORD) == ""
    text = redact(f"failed for {url}; auth {PASSWORD}; topic {PATH_TOKEN}", [url])
    assert PASSWORD not in text and PATH_TOKEN not in text and "ntfy.example" not in text


def test_the_message_says_out_of_budget_and_the_spend() -> None:
    from agentos.run.notify import message
    from agentos.usage.budget import BudgetReached, RunBudget

    budget = RunBudget(1.0, spent=1.02)
    fatal = BudgetReached(budget)
    fatal.not_started = 3
    data = {
        "command": "implement",
        "run_dir": "/runs/r1",
        "seconds": 3725.0,
        "exit_code": 1,
        "totals": {"done": 4, "not run": 3},
        "usage": {"calls": 12, "cost_usd": 1.02, "unpriced_calls": 0},
    }
    title, body = message(data, "7 items: 4 done, 3 not run", fatal)
    assert title == "agentos implement: out of budget"
    assert "counts: 4 done, 3 not run" in body
    assert "duration: 1 h 02 min" in body
    assert "spend: $1.02 (12 calls)" in body
    assert "error: budget reached: $1.02 of $1.00 spent; 3 items not started" in body
