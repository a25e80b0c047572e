"""The real Claude Code CLI (installed by `make test-clis`) editing worktrees under agentos's
permission policy, against a loopback Anthropic server that answers with `tool_use` blocks: the
CLI really runs Write and Bash, and really refuses what the policy does not allow."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.agent_clis import KEY, NODE_BIN, need
from support.fake_agent_apis import FakeAnthropic, Turn
from support.keys import keys_file
from support.processes import agentos_argv, clean_env, only_run_dir, run
from support.repos import make_repo, sh
from support.sim import repo_with_briefs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
MODEL = "claude:claude-sonnet-4-5"


@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short one: a denied command is shown cut at 80 characters, and the tests name the paths
    they had the CLI touch (a worker's tmp dir under pytest-xdist is longer)."""
    return tmp_path_factory.mktemp("claude")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home of the test's own: Claude Code keeps its settings and sessions there."""
    need("claude")
    path = tmp_path / "home"
    path.mkdir()
    return path


def claude_env(home: Path, server: FakeAnthropic) -> dict[str, str]:
    env = clean_env(HOME=str(home), ANTHROPIC_BASE_URL=server.url)
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env['PATH']}"
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        env.pop(name, None)
    return env


def implementing(turn: Turn) -> str | None:
    """The item an implement prompt is about, None for any other prompt."""
    found = re.search(r"^## LLD \((lld-[\w-]+)\)$", turn.prompt, re.MULTILINE)
    return found.group(1) if found else None


def test_parallel_agents_writing_one_path_each_land_on_their_own_branch(
    tmp_path: Path, home: Path
) -> None:
    """Three items at once, each of whose agents writes src/shared.py with its own content:
    each lands on its own branch, none in the user's checkout."""
    repo = make_repo(tmp_path, {"LLD-1.md": "One", "LLD-2.md": "Two", "LLD-3.md": "Three"})
    keys = keys_file(tmp_path, f"{KEY}\n")

    def script(turn: Turn) -> list[dict[str, Any]] | None:
        item = implementing(turn)
        if item is None or turn.results:
            return None  # the tool ran: answer with text and end the turn
        return [{"name": "Write", "input": {"file_path": f"{turn.cwd}/src/shared.py",
                                             "content": f"OWNER = {item!r}\n"}}]  # fmt: skip

    with FakeAnthropic({KEY: "ok"}, script=script) as server:
        done = run(
            agentos_argv("implement", "--repo", str(repo), "--implementer", MODEL, "-j", "3",
                         "--credentials-file", str(keys), "--key-slots", "3",
                         "--test-cmd", "test -f src/shared.py"),
            cwd=repo, env=claude_env(home, server), timeout=150,
        )  # fmt: skip
        calls = list(server.calls)
    assert done.returncode == 0, done.stderr[-3000:]
    for item in ("lld-1", "lld-2", "lld-3"):
        assert sh(repo, "show", f"agentos/{item}:src/shared.py") == f"OWNER = {item!r}"
    assert not (repo / "src" / "shared.py").exists()
    assert sh(repo, "status", "--porcelain") == ""
    # the policy the CLI was given: editing tools and its shell, nothing else
    implement_calls = [c for c in calls if "implementing an approved" in c["prompt"]]
    assert implement_calls and all(
        sorted(c["tools"]) == ["Bash", "Edit", "Glob", "Grep", "Read", "Write"]
        for c in implement_calls
    )
    summary = json.loads((only_run_dir(repo) / "summary.json").read_text())
    assert summary["usage"]["cost_usd"] > 0
    assert all("Agentos-Cost: $" in sh(repo, "log", "-1", "--format=%B", f"agentos/{i}")
               for i in ("lld-1", "lld-2", "lld-3"))  # fmt: skip


def test_a_denied_tool_fails_the_attempt_naming_it(tmp_path: Path, home: Path) -> None:
    """A shell command the policy does not allow and a write outside the worktree: Claude Code
    refuses both and still answers that it succeeded; the attempt fails, naming them."""
    repo = make_repo(tmp_path, {"LLD-1.md": "One"})
    outside = tmp_path / "outside.txt"
    keys = keys_file(tmp_path, f"{KEY}\n")

    def script(turn: Turn) -> list[dict[str, Any]] | None:
        if implementing(turn) is None or turn.results:
            return None
        return [
            {"name": "Bash", "input": {"command": f"touch {tmp_path}/pwned"}},
            {"name": "Write", "input": {"file_path": str(outside), "content": "x\n"}},
            {"name": "Write", "input": {"file_path": f"{turn.cwd}/src/ok.py", "content": "x=1\n"}},
        ]

    with FakeAnthropic({KEY: "ok"}, script=script) as server:
        done = run(
            agentos_argv("implement", "--repo", str(repo), "--implementer", MODEL,
                         "--credentials-file", str(keys), "--retries", "0"),
            cwd=repo, env=claude_env(home, server), timeout=150,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert not (tmp_path / "pwned").exists() and not outside.exists()
    row = json.loads((only_run_dir(repo) / "summary.json").read_text())["items"][0]
    assert row["status"] == "failed"
    assert row["error"].startswith(f"claude was denied Bash(touch {tmp_path}/pwned)")
    assert f"Write({outside})" in row["error"]
    assert "--allow-tool RULE grants more" in row["error"]
    assert sh(repo, "rev-list", "--count", "HEAD..agentos/lld-1") == "0"


def test_requirements_agents_may_read_and_never_edit(tmp_path: Path, home: Path) -> None:
    repo = repo_with_briefs(tmp_path, 1)
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    with FakeAnthropic({KEY: "ok"}) as server:
        done = run(
            agentos_argv("requirements", "--repo", str(repo), "--drafter", MODEL,
                         "--credentials-file", str(keys_file(tmp_path, f"{KEY}\n"))),
            cwd=repo, env=claude_env(home, server), timeout=120,
        )  # fmt: skip
        calls = list(server.calls)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(calls) == 2  # a draft and its review
    assert all(sorted(c["tools"]) == ["Glob", "Grep", "Read"] for c in calls)
    assert (repo / "docs" / "lld" / "active" / "idea-00.md").exists()
