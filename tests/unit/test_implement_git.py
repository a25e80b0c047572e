"""The implement workflow's git layer, against real repositories: the user's repository as the
parent reads it, item worktrees and branches as the workers make them, the answer writer, and
the test command's detection."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from support.processes import git_repo
from support.repos import checkout_state, sh

from agentos.errors import ConfigError, ItemError
from agentos.workflows.implement import git, tests_gate
from agentos.workflows.implement.answer import (
    AnswerFile,
    check_path,
    forbidden_changes,
    parse_answer,
    write_files,
)
from agentos.workflows.implement.collect import lld_id


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / "src").mkdir(parents=True)
    (path / "src" / "app.py").write_text("VALUE = 1\n")
    return git_repo(path)


# ---- the user's repository ------------------------------------------------------------------


def test_a_folder_that_is_not_a_repository_says_to_git_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not in a git repository.*git init"):
        git.Repository.open(tmp_path, "HEAD")


def test_a_repository_without_commits_says_to_commit(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    with pytest.raises(ConfigError, match="has no commit yet: commit your code first"):
        git.Repository.open(tmp_path, "HEAD")


def test_base_names_a_commit_and_a_dirty_checkout_is_said(repo: Path) -> None:
    found = git.Repository.open(repo, "HEAD")
    assert found.top == repo.resolve() and found.prefix == ""
    assert found.base == sh(repo, "rev-parse", "HEAD") and not found.dirty
    with pytest.raises(ConfigError, match="--base 'no-such-ref' names no commit"):
        git.Repository.open(repo, "no-such-ref")
    (repo / "src" / "app.py").write_text("VALUE = 2\n")
    assert git.Repository.open(repo, "HEAD").dirty
    inside = git.Repository.open(repo / "src", "HEAD")
    assert inside.top == repo.resolve() and inside.prefix == "src"


def test_commits_need_an_identity_before_anything_runs(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sh(repo, "config", "--unset", "user.name")
    sh(repo, "config", "--unset", "user.email")
    monkeypatch.setenv("HOME", str(tmp_path))  # no global identity either
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    found = git.Repository.open(repo, "HEAD")
    with pytest.raises(ConfigError, match=r"git config user\.name"):
        found.check_identity()


# ---- worktrees ------------------------------------------------------------------------------


def test_a_worktree_per_item_on_its_own_branch_and_the_checkout_untouched(repo: Path) -> None:
    before = checkout_state(repo)
    trees = git.Worktrees(repo)
    path = trees.open("lld-1", "agentos/lld-1", "HEAD")
    assert path == repo / ".agentos" / "worktrees" / "lld-1"
    assert sh(path, "rev-parse", "--abbrev-ref", "HEAD") == "agentos/lld-1"
    (path / "src" / "app.py").write_text("VALUE = 3\n")
    (path / "new.py").write_text("x = 1\n")
    # a retry continues where the last attempt stopped
    assert trees.open("lld-1", "agentos/lld-1", "HEAD") == path
    assert (path / "new.py").exists()
    assert checkout_state(repo) == before  # .agentos/ is ignored through its own .gitignore
    trees.remove("lld-1")
    assert not path.exists() and sh(repo, "branch", "--list", "agentos/lld-1")
    assert checkout_state(repo) == before


def test_what_a_killed_run_left_is_cleared_or_reused(repo: Path) -> None:
    trees = git.Worktrees(repo)
    path = trees.open("lld-2", "agentos/lld-2", "HEAD")
    (path / "work.txt").write_text("half done\n")
    git.commit(path, "earlier work\n")
    # the folder went (rm -rf), the registration stayed
    subprocess.run(["rm", "-rf", str(path)], check=True)
    again = trees.open("lld-2", "agentos/lld-2", "HEAD")
    assert (again / "work.txt").read_text() == "half done\n"  # back on the branch's commit
    # a folder that git does not know (a run killed inside `worktree add`) is cleared
    stray = trees.path("lld-3")
    stray.mkdir(parents=True)
    (stray / "junk").write_text("?")
    made = trees.open("lld-3", "agentos/lld-3", "HEAD")
    assert not (made / "junk").exists() and (made / "src" / "app.py").exists()


def test_a_symlink_in_place_of_the_agentos_folder_is_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / ".agentos").symlink_to(outside)
    with pytest.raises(ItemError, match="symlink"):
        git.Worktrees(repo).open("lld-1", "agentos/lld-1", "HEAD")
    assert list(outside.iterdir()) == []


def _open(args: tuple[str, str]) -> str:
    top, item = args
    return str(git.Worktrees(Path(top)).open(item, f"agentos/{item}", "HEAD"))


def test_worktrees_made_at_once_by_many_processes_all_succeed(repo: Path) -> None:
    """git fails a `worktree add` that finds another one's lock: agentos serializes them."""
    items = [f"lld-{n}" for n in range(8)]
    with ProcessPoolExecutor(4) as pool:
        made = list(pool.map(_open, [(str(repo), item) for item in items]))
    assert sorted(Path(p).name for p in made) == sorted(items)
    listed = sh(repo, "worktree", "list", "--porcelain")
    assert all(f"branch refs/heads/agentos/{item}" in listed for item in items)


def test_snapshot_changes_and_commit(repo: Path, tmp_path: Path) -> None:
    trees = git.Worktrees(repo)
    path = trees.open("lld-4", "agentos/lld-4", "HEAD")
    base = sh(repo, "rev-parse", "HEAD")
    (tmp_path / "scratch").mkdir()
    first = git.snapshot(path, tmp_path / "scratch")
    assert git.changed_paths(path, base, first) == []
    (path / "src" / "app.py").write_text("VALUE = 2\nOTHER = 3\n")
    (path / "src" / "new.py").write_text("x = 1\n")
    second = git.snapshot(path, tmp_path / "scratch")
    assert second != first
    assert git.changed_paths(path, base, second) == [("M", "src/app.py"), ("A", "src/new.py")]
    assert sh(path, "status", "--porcelain") != ""  # the worktree's own index is untouched
    commit = git.commit(path, "implement lld-4: x\n\nBody.\n\nAgentos-LLD: a.md\n")
    assert git.diffstat(path, base, commit) == "2 files +3 -1"
    assert git.trailers(sh(repo, "log", "-1", "--format=%B", commit)) == {"Agentos-LLD": "a.md"}


# ---- files from answers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        "src/.git/hooks/pre-commit",
        ".GIT/config",
        ".envrc",
        ".claude/settings.json",
        ".github/workflows/release.yml",
        ".agentos/locks/x",
    ],
)
def test_answers_may_not_write_control_paths(path: str) -> None:
    with pytest.raises(ItemError, match="agents may not write it"):
        check_path(path)
    answer = f"### {path}\n```\n[core]\n\tfsmonitor = touch pwned\n```\n"
    with pytest.raises(ItemError, match="nothing was written"):
        parse_answer(answer)
    assert forbidden_changes([path, "src/ok.py"]) == [f"{path} ({path_reason(path)})"]


def path_reason(path: str) -> str:
    from agentos.workflows.implement.answer import control_path

    reason = control_path(path)
    assert reason is not None
    return reason


def test_files_are_written_beneath_the_worktree_and_never_through_a_symlink(
    tmp_path: Path,
) -> None:
    root = tmp_path / "worktree"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "docs").symlink_to(outside)  # a committed symlink to elsewhere
    (root / "link.txt").symlink_to(outside / "target.txt")
    with pytest.raises(ItemError, match="docs is a symbolic link; agentos does not write through"):
        write_files(root, [AnswerFile("docs/design.md", "x\n")])
    assert list(outside.iterdir()) == []
    # a symlink as the file itself is replaced, not followed
    write_files(root, [AnswerFile("link.txt", "mine\n")])
    assert not (root / "link.txt").is_symlink() and (root / "link.txt").read_text() == "mine\n"
    assert not (outside / "target.txt").exists()
    write_files(root, [AnswerFile("src/deep/new.py", "y = 2\n")])
    assert (root / "src/deep/new.py").read_text() == "y = 2\n"
    assert [p.name for p in (root / "src/deep").iterdir()] == ["new.py"]  # no temp file left


# ---- ids and the test command ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "item_id"),
    [
        ("LLD-137.md", "lld-137"),
        ("LLD-019.md", "lld-19"),
        ("137-title.md", "lld-137"),
        ("csv-export.md", "lld-csv-export"),
        ("Dark Mode.md", "lld-dark-mode"),
    ],
)
def test_lld_ids_with_or_without_a_number(name: str, item_id: str) -> None:
    assert lld_id(name) == item_id


@pytest.mark.parametrize(
    ("files", "line"),
    [
        ({"pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n"}, "-m pytest -q"),
        ({"setup.cfg": "[tool:pytest]\ntestpaths = t\n"}, "-m pytest -q"),
        ({"tests/test_x.py": "def test_x(): pass\n"}, "-m pytest -q"),
        ({"package.json": '{"scripts": {"test": "vitest run"}}'}, "npm test"),
        ({"package.json": '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'},
         None),
        ({"Makefile": "all:\n\ttrue\ntest:\n\ttrue\n"}, "make test"),
        ({"Makefile": "all:\n\ttrue\n", "pyproject.toml": "[project]\nname = 'x'\n"}, None),
    ],
)  # fmt: skip
def test_the_test_command_is_found_in_the_base_commit(
    tmp_path: Path, files: dict[str, str], line: str | None
) -> None:
    repo = tmp_path / "r"
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git_repo(repo)
    found = tests_gate.detect(git.Repository.open(repo, "HEAD"))
    if line is None:
        assert found is None
    else:
        assert found is not None and found.line.endswith(line)


def test_the_test_command_is_read_from_the_base_not_the_checkout(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    repo = git_repo(tmp_path / "r")
    (repo / "pytest.ini").write_text("[pytest]\n")  # not committed: not on the branches
    assert tests_gate.detect(git.Repository.open(repo, "HEAD")) is None


def test_new_test_files_are_recognised() -> None:
    new = ("tests/test_x.py", "pkg/x_test.py", "web/a.test.ts", "web/b.spec.jsx", "x_test.go")
    for path in new:
        assert tests_gate.is_test_file(path), path
    for path in ("src/testing.py", "tests/conftest.py", "docs/test.md"):
        assert not tests_gate.is_test_file(path), path


def test_git_runs_without_keys_or_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOS_CREDENTIALS", "sk-secret")
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    env = git.git_env()
    assert "AGENTOS_CREDENTIALS" not in env and "GIT_DIR" not in env
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert os.environ["AGENTOS_CREDENTIALS"] == "sk-secret"
