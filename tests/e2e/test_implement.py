"""`agentos implement` end to end, against real git repositories: one worktree and branch per
LLD, the repository's real tests (pytest) as the gate, commits, pushes to a bare repository, and
the user's checkout never touched."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from support.processes import agentos_argv, clean_env, only_run_dir, run
from support.repos import checkout_state, make_repo, sh

pytestmark = pytest.mark.timeout(180)


def implement(repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 150):
    return run(
        agentos_argv("implement", "--repo", str(repo), *args),
        cwd=repo,
        env=env or clean_env(),
        timeout=timeout,
    )


def agent_script(tmp_path: Path, name: str, body: str) -> str:
    """A `cmd:` agent: a shell script run in the item's worktree, the prompt on stdin."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return f"cmd:{path}"


def summary(repo: Path) -> dict[str, dict]:
    data = json.loads((only_run_dir(repo) / "summary.json").read_text())
    return {row["id"]: row for row in data["items"]}


def test_mock_implements_every_lld_on_its_own_verified_branch(tmp_path: Path) -> None:
    """Three LLDs at -j 3 with the mock, which gets the first round wrong: each ends as one
    commit on agentos/<id> whose tests pass, after the failing tests went back to it; the user's
    checkout is as it was; a rerun has nothing to do; a changed LLD is implemented again."""
    repo = make_repo(tmp_path, {"LLD-7.md": "Pin notes", "csv-export.md": "CSV export",
                                "LLD-9.md": "Trash"})  # fmt: skip
    (repo / "src" / "app.py").write_text("VALUE = 1  # my uncommitted edit\n")
    before = checkout_state(repo)
    done = implement(repo, "--implementer", "mock", "-j", "3",
                     env=clean_env(AGENTOS_MOCK_FAIL_FIRST="1"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "uncommitted changes; the branches start from HEAD" in done.stderr
    assert "tests: python -m pytest -q (pyproject.toml" not in done.stderr  # found via tests/
    assert "tests: " in done.stderr and "the tests/ folder" in done.stderr
    assert checkout_state(repo) == before
    branches = sh(repo, "branch", "--list", "agentos/*", "--format=%(refname:short)").split()
    assert branches == ["agentos/lld-7", "agentos/lld-9", "agentos/lld-csv-export"]
    assert list((repo / ".agentos" / "worktrees").iterdir()) == []
    rows = summary(repo)
    for item_id in ("lld-7", "lld-9", "lld-csv-export"):
        branch = f"agentos/{item_id}"
        row = rows[item_id]
        assert (row["status"], row["detail"]) == ("done", "verified")
        assert row["outputs"]["branch"] == branch
        assert row["outputs"]["commit"] == sh(repo, "rev-parse", branch)
        assert row["outputs"]["diffstat"] == "2 files +" + row["outputs"]["diffstat"].split("+")[1]
        message = sh(repo, "log", "-1", "--format=%B", branch)
        assert message.startswith(f"implement {item_id}: ")
        assert "Agentos-Tests: passed (python -m pytest -q: 3 passed" in message
        assert "Agentos-Iterations: 2" in message
        assert (
            "Agentos-Red-Green: red on the base, green on the branch (1 new test file)" in message
        )
        assert sh(repo, "rev-list", "--count", f"HEAD..{branch}") == "1"
        # the branch's tests pass there, and on the base the new ones fail
        trail = only_run_dir(repo) / "items" / item_id / "attempt-1"
        assert "1 failed, 2 passed" in (trail / "iteration-1" / "tests.log").read_text()
        second = (trail / "iteration-2" / "prompt.md").read_text()
        assert "The tests failed (iteration 1 of 3)" in second and "1 failed" in second
    assert "uncommitted edit" not in sh(repo, "show", "agentos/lld-7:src/app.py")
    assert f"{rows['lld-7']['outputs']['summary']}" in done.stderr  # the table's result column

    again = implement(repo, "--implementer", "mock")
    assert again.returncode == 0 and again.stdout == "Nothing to process\n"
    lld = repo / "docs" / "lld" / "active" / "LLD-9.md"
    lld.write_text(lld.read_text().replace("- R2: Trash says", "- R2: Trash tells"))
    pending = implement(repo, "--implementer", "mock", "--dry-run")
    assert pending.returncode == 0
    assert [line.split()[0] for line in pending.stdout.splitlines()[1:-1]] == ["lld-9"]


def test_failing_tests_go_back_to_the_agent_and_then_the_item_fails(tmp_path: Path) -> None:
    """An agent whose test always fails: called again with the failure, then the item fails
    (exit 1) with its worktree kept and named; a rerun continues in that worktree."""
    repo = make_repo(tmp_path, {"LLD-1.md": "Broken"})
    calls = tmp_path / "calls.log"
    agent = agent_script(
        tmp_path,
        "broken.sh",
        f"""\
        cat > "{tmp_path}/prompt-$AGENTOS_ATTEMPT-$(date +%s%N).txt"
        echo "cwd=$PWD kept=$(test -f tests/test_broken.py && echo yes || echo no)" >> {calls}
        mkdir -p tests && printf 'def test_broken():\\n    assert 1 == 2\\n' > tests/test_broken.py
        echo "I fixed it."
        """,
    )
    before = checkout_state(repo)
    done = implement(repo, "--implementer", agent, "--max-iterations", "2", "--retries", "0")
    assert done.returncode == 1, done.stderr
    worktree = repo / ".agentos" / "worktrees" / "lld-1"
    said = calls.read_text().splitlines()
    assert said == [f"cwd={worktree} kept=no", f"cwd={worktree} kept=yes"]
    prompts = sorted(tmp_path.glob("prompt-*.txt"))
    assert "The tests failed" not in prompts[0].read_text()
    second = prompts[1].read_text()
    assert "The tests failed (iteration 1 of 2)" in second and "assert 1 == 2" in second
    row = summary(repo)["lld-1"]
    assert row["status"] == "failed"
    assert row["error"].startswith("the tests still fail (")
    assert "after 2 iterations (worktree kept: .agentos/worktrees/lld-1)" in row["error"]
    assert row["outputs"]["summary"] == "worktree kept: .agentos/worktrees/lld-1"
    assert (worktree / "tests" / "test_broken.py").exists()
    assert checkout_state(repo) == before
    assert sh(repo, "rev-list", "--count", "HEAD..agentos/lld-1") == "0"  # nothing committed

    again = implement(repo, "--implementer", agent, "--max-iterations", "1", "--retries", "0")
    assert again.returncode == 1
    assert calls.read_text().splitlines()[-1] == f"cwd={worktree} kept=yes"


def test_text_answers_are_written_into_the_worktree_and_control_paths_refused(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, {"LLD-1.md": "Good", "LLD-2.md": "Hostile"}, pytest_config=False)
    agent = agent_script(
        tmp_path,
        "answers.sh",
        """\
        cat > /dev/null
        if [ "$AGENTOS_ITEM_ID" = lld-2 ]; then
          printf '### .git/config\\n```\\n[core]\\n\\tfsmonitor = touch pwned\\n```\\n'
        fi
        printf '### src/good.py\\n```python\\nGOOD = True\\n```\\n'
        """,
    )
    done = implement(repo, "--implementer", agent, "--edits", "text", "-j", "2", "--retries", "0")
    assert done.returncode == 1, done.stderr
    assert "no test command found" in done.stderr
    rows = summary(repo)
    assert (rows["lld-1"]["status"], rows["lld-1"]["detail"]) == ("done", "unverified")
    assert sh(repo, "show", "agentos/lld-1:src/good.py") == "GOOD = True"
    assert "Agentos-Tests: unverified (no test command)" in sh(
        repo, "log", "-1", "--format=%B", "agentos/lld-1"
    )
    assert rows["lld-2"]["status"] == "failed"
    assert "unsafe path '.git/config'" in rows["lld-2"]["error"]
    assert "nothing was written" in rows["lld-2"]["error"]
    kept = repo / ".agentos" / "worktrees" / "lld-2"
    assert not (kept / "src" / "good.py").exists()
    assert (kept / ".git").is_file() and "fsmonitor" not in sh(kept, "config", "--list")


def test_branches_are_pushed_and_a_verified_unpushed_branch_only_pushes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"LLD-1.md": "One", "LLD-2.md": "Two"})
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    sh(repo, "remote", "add", "origin", str(remote))
    bad = implement(repo, "--implementer", "mock", "--push", "upstream")
    assert bad.returncode == 2
    assert bad.stderr == (
        f"agentos: error: --push 'upstream': no such remote in {repo.resolve()} (it has: origin)\n"
    )
    done = implement(repo, "--implementer", "mock", "--push", "origin", "-j", "2",
                     "--test-cmd", "python -m pytest -q")  # fmt: skip
    assert done.returncode == 0, done.stderr
    for item_id in ("lld-1", "lld-2"):
        assert sh(remote, "rev-parse", f"agentos/{item_id}") == sh(
            repo, "rev-parse", f"agentos/{item_id}"
        )
    sh(remote, "branch", "-D", "agentos/lld-2")
    spy = agent_script(tmp_path, "spy.sh", f"touch {tmp_path}/called\ncat >/dev/null\n")
    again = implement(repo, "--implementer", spy, "--push", "origin",
                      "--test-cmd", "python -m pytest -q")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "1 item: 1 done" in again.stderr
    assert not (tmp_path / "called").exists()  # verified already: only pushed
    assert sh(remote, "rev-parse", "agentos/lld-2") == sh(repo, "rev-parse", "agentos/lld-2")


def test_require_red_refuses_new_tests_that_pass_without_the_change(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"LLD-1.md": "Vacuous"})
    agent = agent_script(
        tmp_path,
        "vacuous.sh",
        """\
        cat > /dev/null
        mkdir -p tests && printf 'def test_nothing():\\n    assert True\\n' > tests/test_vacuous.py
        printf 'X = 1\\n' > src/vacuous.py
        """,
    )
    recorded = implement(repo, "--implementer", agent)
    assert recorded.returncode == 0, recorded.stderr
    assert summary(repo)["lld-1"]["outputs"]["red_green"] == (
        "the new tests pass on the base too (1 new test file)"
    )
    forced = implement(repo, "--implementer", agent, "--force", "--require-red",
                       "--max-iterations", "2", "--retries", "0")  # fmt: skip
    assert forced.returncode == 1
    assert "the new tests still pass on the base (--require-red) after 2 iterations" in (
        forced.stderr
    )
    # --force worked on a fresh branch beside the verified one
    assert sh(repo, "branch", "--list", "agentos/*", "--format=%(refname:short)").split() == [
        "agentos/lld-1",
        "agentos/lld-1-v2",
    ]


def test_set_up_errors_are_one_line_before_any_agent_runs(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "docs" / "lld" / "active").mkdir(parents=True)
    done = implement(plain, "--implementer", "mock")
    assert done.returncode == 2
    assert done.stderr == (
        f"agentos: error: --repo {plain} is not in a git repository: implement works on "
        "branches; run 'git init' there and commit your code first\n"
    )
    repo = make_repo(tmp_path, {"LLD-1.md": "One"})
    env = clean_env()
    env.pop("AGENTOS_IMPLEMENTER")
    missing = implement(repo, env=env)
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        "agentos: error: choose the agent with --implementer SPEC (or AGENTOS_IMPLEMENTER): "
    )
    assert "mock" in missing.stderr and missing.stderr.count("\n") == 1
    assert not (repo / ".agentos").exists()


def test_resume_uses_the_recorded_agent_and_options_and_refuses_another_agent(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, {"LLD-1.md": "One", "LLD-2.md": "Two"})
    flag = tmp_path / "fixed"
    agent = agent_script(
        tmp_path,
        "flaky.sh",
        f"""\
        cat > /dev/null
        if [ "$AGENTOS_ITEM_ID" = lld-2 ] && [ ! -e {flag} ]; then echo broken >&2; exit 3; fi
        echo "DONE = True" > src/$AGENTOS_ITEM_ID.py
        """,
    )
    first = implement(repo, "--implementer", agent, "--test-cmd", "true", "--retries", "0")
    assert first.returncode == 1, first.stderr
    run_dir = only_run_dir(repo)
    env = clean_env()
    env.pop("AGENTOS_IMPLEMENTER")  # nothing names an agent: the recorded one is used
    other = run(agentos_argv("implement", "--resume", str(run_dir), "--implementer", "mock"),
                cwd=tmp_path, env=env)  # fmt: skip
    assert other.returncode == 2
    assert "--implementer" in other.stderr and other.stderr.count("\n") == 1
    flag.touch()
    again = run(agentos_argv("implement", "--resume", str(run_dir)), cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert "1 done in an earlier pass" in again.stderr or "earlier pass" in again.stderr
    assert "Agentos-Tests: passed (true" in sh(repo, "log", "-1", "--format=%B", "agentos/lld-2")
    assert sh(repo, "show", "agentos/lld-2:src/lld-2.py") == "DONE = True"
