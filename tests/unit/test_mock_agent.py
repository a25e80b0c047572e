"""The mock agent: deterministic rules, not canned answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import NO_PLUGINS_ENV

from agentos import lld
from agentos.agents import AgentRequest, resolve_agent
from agentos.agents.base import ToolPolicy
from agentos.agents.mock import MockAgent
from agentos.errors import ConfigError, RateLimited
from agentos.item.context import ItemContext
from agentos.item.workflow import Item
from agentos.workflows.implement.answer import parse_answer

BRIEF = """# Export notes as CSV

Users want their notes in a spreadsheet.

- Export a notebook as `notes.csv`
  - nested detail is not a requirement
- One row per note
- Should exports include archived notes?

Code in `src/export/csv_export.py`.
"""


def ctx(tmp_path: Path, attempt: int = 1) -> ItemContext:
    return ItemContext(item=Item("brief-x"), attempt=attempt, run_dir=tmp_path, config=None)


def ask(agent: MockAgent, task: str, c: ItemContext, **inputs: str) -> str:
    return agent.run(AgentRequest(task, "(prompt)", inputs), c)


def test_draft_review_redraft(tmp_path: Path) -> None:
    agent, c = MockAgent(), ctx(tmp_path)
    first = ask(agent, "draft", c, brief=BRIEF, title="Export", slug="csv-export", review="")
    assert [rid for rid, _ in lld.requirements(first)] == ["R1", "R2", "R3"]
    assert lld.uncovered_requirements(first) == ["R3"]  # the open question
    assert [f.path for f in lld.files_changed(first) or []] == ["src/export/csv_export.py"]
    verdict = ask(agent, "review", c, draft=first)
    assert verdict.startswith("REVISE\n") and "R3" in verdict
    second = ask(agent, "draft", c, brief=BRIEF, title="Export", slug="csv-export", review=verdict)
    assert lld.uncovered_requirements(second) == []
    assert "R3: Exports include archived notes (settled in review)." in second
    assert ask(agent, "review", c, draft=second).startswith("APPROVED\n")
    # deterministic: the same input gives the same LLD
    assert (
        ask(agent, "draft", c, brief=BRIEF, title="Export", slug="csv-export", review="") == first
    )


def test_review_flags_missing_sections(tmp_path: Path) -> None:
    verdict = ask(MockAgent(), "review", ctx(tmp_path), draft="# LLD: x\n\n## 3. Requirements\n")
    assert verdict.startswith("REVISE") and "Missing sections: Context & goal" in verdict


def test_implement_scaffolds_files_and_one_test_per_scenario(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "examples/demo-repo/docs/lld/active/LLD-102.md").read_text()
    answer = ask(MockAgent(), "implement", ctx(tmp_path), lld=text, item_id="lld-102")
    files = {f.path: f.content for f in parse_answer(answer)}
    assert sorted(files) == [
        "src/jobs/purge_trash.py",
        "src/notes/trash.py",
        "tests/test_lld_102.py",
    ]
    assert files["tests/test_lld_102.py"].count("\ndef test_t") == 3
    compile(files["tests/test_lld_102.py"], "test_lld_102.py", "exec")
    compile(files["src/notes/trash.py"], "trash.py", "exec")


def test_simulated_rate_limits_are_a_stable_fraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTOS_SIMULATE_429", "0.3")
    monkeypatch.setenv("AGENTOS_SIMULATE_429_RETRY_AFTER", "7")
    agent = MockAgent()
    limited = []
    for attempt in range(1, 201):
        try:
            ask(agent, "review", ctx(tmp_path, attempt), draft="# x\n")
        except RateLimited as exc:
            assert exc.retry_after == 7
            limited.append(attempt)
    assert 40 <= len(limited) <= 80
    again = []
    for attempt in range(1, 201):
        try:
            ask(agent, "review", ctx(tmp_path, attempt), draft="# x\n")
        except RateLimited:
            again.append(attempt)
    assert again == limited


def test_agent_specs() -> None:
    assert isinstance(resolve_agent("mock", "--drafter"), MockAgent)
    assert resolve_agent("cmd:cat", "--drafter").spec == "cmd:cat"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="give the command after 'cmd:'"):
        resolve_agent("cmd:", "--drafter")
    with pytest.raises(ConfigError, match="cannot parse the command line"):
        resolve_agent("cmd:claude 'unclosed", "--drafter")


def test_implement_with_tools_writes_a_change_whose_tests_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As an agent with tools, the mock writes into its working directory; the tests it writes
    pass there, and AGENTOS_MOCK_FAIL_FIRST=1 makes its first round fail one of them."""
    text = (Path(__file__).parents[2] / "examples/demo-repo/docs/lld/active/LLD-102.md").read_text()

    def implement(where: Path, **inputs: str) -> subprocess.CompletedProcess[str]:
        where.mkdir()
        request = AgentRequest(
            "implement", "(prompt)", {"lld": text, "item_id": "lld-102", "mode": "tools", **inputs},
            cwd=str(where), tools=ToolPolicy.EDIT,
        )  # fmt: skip
        said = MockAgent().run(request, ctx(tmp_path))
        assert said.startswith("Implemented lld-102: wrote ")
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=where, capture_output=True, text=True,
            env={**os.environ, NO_PLUGINS_ENV: "1"},  # the written tests need no plugin
        )  # fmt: skip

    assert implement(tmp_path / "whole").stdout.splitlines()[-1].startswith("3 passed")
    monkeypatch.setenv("AGENTOS_MOCK_FAIL_FIRST", "1")
    first = implement(tmp_path / "first")
    assert first.returncode == 1 and "1 failed, 2 passed" in first.stdout
    fixed = implement(tmp_path / "fixed", problem="The tests failed ...")
    assert fixed.returncode == 0
