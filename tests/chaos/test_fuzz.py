"""Hypothesis-driven fuzzing of everything a user (or an agent) hands agentos: item ids, key
files, briefs, LLDs, agent answers, command lines. The promises: no traceback for user input,
never a file written outside the worktree it is meant for, errors of one line.

Derandomised (a fixed seed per test), so CI is repeatable; `--hypothesis-seed` explores more.
"""

from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.chaos import TALLY
from support.processes import agentos_argv, git_repo, run

from agentos import lld
from agentos.agents.mock import MockAgent
from agentos.commands.cli import cli
from agentos.errors import ConfigError, ItemError
from agentos.governor.credentials import load_credentials
from agentos.item.context import ItemContext
from agentos.item.ids import id_problem, sanitize_id
from agentos.item.workflow import Item
from agentos.run.runner import configure_logging
from agentos.workflows.implement import execute_item as implement_item
from agentos.workflows.implement.answer import parse_answer, write_files
from agentos.workflows.implement.config import ImplementConfig
from agentos.workflows.implement.git import Repository
from agentos.workflows.requirements import execute_item as requirements_item
from agentos.workflows.requirements.config import RequirementsConfig

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SLOW_FUZZ = settings(FUZZ, max_examples=40)

PATHISH = st.text(alphabet="ab./\\~:-_ \n\t\x00é", max_size=30)
FENCES = st.sampled_from(["```", "````", "~~~", "```python", "``", ""])


def one_line(message: str) -> bool:
    return "\n" not in message and 0 < len(message) < 2000


@FUZZ
@given(st.text(max_size=300))
def test_any_text_sanitises_to_a_valid_id(text: str) -> None:
    TALLY["fuzz examples"] += 1
    assert id_problem(sanitize_id(text)) is None


@FUZZ
@given(st.binary(max_size=400))
def test_any_key_file_loads_or_is_a_clear_config_error(data: bytes) -> None:
    TALLY["fuzz examples"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keys.txt"
        path.write_bytes(data)
        path.chmod(0o600)
        try:
            keys = load_credentials(path, warn=lambda message: None)
        except ConfigError as exc:
            assert one_line(exc.message) and exc.exit_code == 2
            return
        assert keys and all(k.secret and not any(c.isspace() for c in k.secret) for k in keys)
        assert len({k.secret for k in keys}) == len(keys)


answer_parts = st.lists(
    st.tuples(
        st.sampled_from(["### ", "## ", "#### ", "", "### `"]),
        PATHISH,
        FENCES,
        st.text(max_size=60),
        FENCES,
    ),
    max_size=6,
)


@FUZZ
@given(answer_parts, st.text(max_size=200))
def test_agent_answers_never_write_outside_the_worktree(parts: list, noise: str) -> None:  # type: ignore[type-arg]
    TALLY["fuzz examples"] += 1
    answer = (
        noise
        + "\n"
        + "\n".join(
            f"{head}{path}\n{fence}\n{body}\n{closing}"
            for head, path, fence, body, closing in parts
        )
    )
    try:
        files = parse_answer(answer)
    except ItemError as exc:
        assert one_line(str(exc))
        return
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "worktree"
        target.mkdir()
        (target / "elsewhere").symlink_to(tmp)  # a symlink a repository may hold
        try:
            write_files(target, files)
        except ItemError as exc:
            assert one_line(str(exc))
            return
        written = [p for p in Path(tmp).rglob("*") if p.is_file()]
        assert all(p.resolve().is_relative_to(target.resolve()) for p in written), written
        assert len(written) == len({f.path for f in files})


@FUZZ
@given(st.text(max_size=2000))
def test_lld_parsers_never_raise(text: str) -> None:
    TALLY["fuzz examples"] += 1
    lld.status_of(text)
    lld.title_of(text, "x")
    lld.requirements(text)
    lld.scenarios(text)
    lld.files_changed(text)
    lld.uncovered_requirements(text)


def nested(depth: int) -> str:
    return "\n".join("  " * level + f"- point {level}" for level in range(depth))


brief_bytes = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=600).map(
        lambda t: t.encode("utf-8", "surrogatepass") if False else t.encode("utf-8", "replace")
    ),
    st.integers(min_value=1, max_value=400).map(lambda d: nested(d).encode()),
    st.just(("# Huge\n\n" + "- requirement\n" * 60_000).encode()),
    st.just(b""),
)


def context(tmp: Path, config: object) -> ItemContext:
    return ItemContext(item=Item("x"), attempt=1, run_dir=tmp / "run", config=config)


@SLOW_FUZZ
@given(brief_bytes)
def test_any_brief_gives_a_whole_lld_or_a_clear_failure(data: bytes) -> None:
    TALLY["fuzz examples"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        (repo / "ideas" / "active").mkdir(parents=True)
        brief = repo / "ideas" / "active" / "b.md"
        brief.write_bytes(data)
        agent = MockAgent()
        config = RequirementsConfig(repo, agent, agent, 2, False)
        item = Item("brief-b", data={"path": str(brief), "slug": "b"})
        try:
            requirements_item(item, context(repo, config))
        except ItemError as exc:
            assert one_line(str(exc))
            assert not (repo / "docs").exists()
            return
        written = [p for p in (repo / "docs").rglob("*") if p.is_file()]
        assert [p.relative_to(repo).as_posix() for p in written] in (
            ["docs/lld/active/b.md"],
            ["docs/lld/drafts/b.md"],
        )
        text = written[0].read_text()
        assert text.startswith("# ") and "## 6. Definition of done" in text


@SLOW_FUZZ
@given(st.one_of(st.binary(max_size=800), st.text(max_size=800).map(str.encode)))
def test_any_lld_gives_a_commit_on_its_branch_or_a_clear_failure(data: bytes) -> None:
    TALLY["fuzz examples"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        (repo / "docs" / "lld" / "active").mkdir(parents=True)
        source = repo / "docs" / "lld" / "active" / "LLD-1.md"
        source.write_bytes(b"Status: Approved\n" + data)
        git_repo(repo)
        head = _git(repo, "rev-parse", "HEAD")
        repository = Repository.open(repo, "HEAD")
        config = ImplementConfig(repo.resolve(), MockAgent(), False, repository, tests=None)
        item = Item("lld-1", data={"path": str(source), "source": "docs/lld/active/LLD-1.md",
                                   "branch": "agentos/lld-1", "blob": ""})  # fmt: skip
        try:
            implement_item(item, context(Path(tmp), config))
        except ItemError as exc:
            assert one_line(str(exc))
            return
        finally:
            assert _git(repo, "rev-parse", "HEAD") == head  # the checkout never moves
            assert _git(repo, "status", "--porcelain") == ""
        changed = _git(repo, "diff", "--name-only", head, "agentos/lld-1").splitlines()
        assert changed and all(not p.startswith((".git/", ".agentos/")) for p in changed)
        assert not (repo / ".agentos" / "worktrees" / "lld-1").exists()


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


OPTION_VALUES = st.sampled_from(
    [
        "--parallel",
        "-j",
        "0",
        "-1",
        "3",
        "abc",
        "20",
        "--grace",
        "--timeout",
        "-5",
        "1.5",
        "--retries",
        "--credential-env",
        "BAD NAME",
        "X",
        "--rate-limit-pattern",
        "(",
        "429",
        "--max-rate-limit-waits",
        "--no-color",
        "-q",
        "-v",
        "--resume",
        "/nonexistent",
        "--run-dir",
        "--id-from-item",
        "--credentials-file",
        "--items",
        "--",
        "echo",
        "",
        "\x00",
        "é",
    ]
)


@FUZZ
@given(st.lists(OPTION_VALUES, max_size=8))
def test_any_command_line_is_parsed_or_refused_without_a_traceback(args: list[str]) -> None:
    TALLY["fuzz examples"] += 1
    configure_logging()
    with tempfile.TemporaryDirectory() as tmp:
        items = Path(tmp) / "items.txt"
        items.write_text("a\n")
        runner = CliRunner()
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            result = runner.invoke(
                cli,
                ["run", "--dry-run", "--items", str(items), *args, "--", "echo"],
                catch_exceptions=True,
            )
        finally:
            os.chdir(cwd)
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


@settings(SLOW_FUZZ, max_examples=8)
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    st.lists(
        st.text(alphabet=string.ascii_letters + " _-.ü", min_size=1, max_size=20),
        min_size=1,
        max_size=4,
    ),
)
def test_whole_runs_on_random_brief_folders(
    tmp_path_factory: pytest.TempPathFactory, contents: list[bytes], names: list[str]
) -> None:
    TALLY["fuzz examples"] += 1
    repo = tmp_path_factory.mktemp("repo")
    briefs = repo / "ideas" / "active"
    briefs.mkdir(parents=True)
    for name, data in zip(names, contents, strict=False):
        (briefs / f"{name}.md").write_bytes(data)
    done = run(
        agentos_argv("requirements", "--repo", str(repo), "-j", "2", "--retries", "0"),
        cwd=repo,
        timeout=60,
    )
    assert done.returncode in (0, 1, 2), done.stderr
    assert "Traceback" not in done.stderr
    if done.returncode == 2:
        assert len([line for line in done.stderr.splitlines() if "error" in line]) == 1
    outside = [
        p
        for p in repo.rglob("*")
        if p.is_file()
        and not (
            p.is_relative_to(briefs)
            or p.is_relative_to(repo / "docs" / "lld" / "drafts")
            or p.is_relative_to(repo / "docs" / "lld" / "active")
            or p.is_relative_to(repo / ".agentos")
        )
    ]
    assert outside == []
