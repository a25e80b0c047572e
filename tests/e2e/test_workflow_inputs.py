"""Bad and unusual input to the two workflows, each a test: the run goes on where it can, stops
before anything runs where it must, says why in one line, and never writes half an output."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.processes import REPO, agentos_argv, clean_env, git_repo, run

from agentos import lld
from agentos.errors import ItemError
from agentos.workflows.implement.answer import check_path, parse_answer

pytestmark = pytest.mark.timeout(120)


def make_repo(
    tmp_path: Path, briefs: dict[str, bytes] | None = None, llds: dict[str, str] | None = None
) -> Path:
    repo = tmp_path / "repo"
    (repo / "ideas/active").mkdir(parents=True)
    (repo / "docs/lld/active").mkdir(parents=True)
    for name, data in (briefs or {}).items():
        (repo / "ideas/active" / name).write_bytes(data)
    for name, text in (llds or {}).items():
        (repo / "docs/lld/active" / name).write_text(text)
    return git_repo(repo)  # implement works on branches


def branch_files(repo: Path, branch: str) -> list[str]:
    """The files a branch adds to the base."""
    listing = subprocess.run(
        ["git", "-C", str(repo), "diff", "--name-only", "HEAD", branch],
        capture_output=True,
        text=True,
    )
    return listing.stdout.split() if listing.returncode == 0 else []


GOOD_BRIEF = b"# Good idea\n\nMake it better.\n\n- It is faster\n- It is smaller\n"
APPROVED_LLD = (REPO / "examples/demo-repo/docs/lld/active/LLD-101.md").read_text()


def summary(repo: Path) -> dict[str, str]:
    run_dir = sorted((repo / ".agentos/runs").iterdir())[-1]
    data = json.loads((run_dir / "summary.json").read_text())
    return {
        i["id"]: f"{i['status']}: {i['error']}" if i["error"] else i["status"]
        for i in data["items"]
    }


def test_empty_binary_and_non_utf8_briefs_fail_alone(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        {
            "good.md": GOOD_BRIEF,
            "empty.md": b"   \n",
            "binary.md": b"\x89PNG\r\n\x1a\n\x00\x00",
            "latin1.md": "# Café\n\n- Crème brûlée\n".encode("latin-1"),
        },
    )
    done = run(
        agentos_argv("requirements", "--repo", str(repo), "-j", "2", "--retries", "0"), cwd=repo
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert summary(repo) == {
        "brief-binary": "failed: brief binary.md is binary, not text",
        "brief-empty": "failed: brief empty.md is empty",
        "brief-good": "done",
        "brief-latin1": "failed: brief latin1.md is not UTF-8 text (byte 0xe9 at offset 5); "
        "save it as UTF-8",
    }
    assert [p.name for p in (repo / "docs/lld/active").iterdir()] == ["good.md"]


def test_file_names_without_a_valid_id_are_skipped_with_one_warning(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        {
            "good.md": GOOD_BRIEF,
            "---.md": GOOD_BRIEF,
            "ідея.md": GOOD_BRIEF,
            ("x" * 80) + ".md": GOOD_BRIEF,
        },
    )
    done = run(agentos_argv("requirements", "--repo", str(repo), "--dry-run"), cwd=repo)
    assert done.returncode == 0
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"agentos: warning: skipped 3 files whose names give no valid item id: ---.md, "
        f"{'x' * 80}.md, ідея.md"
    ]
    assert done.stdout.splitlines()[-1] == "1 pending item"


def test_two_files_giving_one_id_stop_before_anything_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"My Idea.md": GOOD_BRIEF, "my_idea.md": GOOD_BRIEF})
    done = run(agentos_argv("requirements", "--repo", str(repo), "-j", "2"), cwd=repo)
    assert done.returncode == 2
    assert done.stderr == (
        "agentos: error: ideas/active/My Idea.md and ideas/active/my_idea.md "
        "both give the item id brief-my-idea; rename one of them\n"
    )
    assert not (repo / ".agentos").exists() and not (repo / "docs/lld/drafts").exists()


def test_lld_numbers_must_be_unique(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, llds={"LLD-7.md": APPROVED_LLD, "007-other.md": APPROVED_LLD})
    done = run(agentos_argv("implement", "--repo", str(repo)), cwd=repo)
    assert done.returncode == 2
    assert "both give the item id lld-7" in done.stderr


def test_review_loop_ends_as_draft_with_the_open_review(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"q.md": b"# Questions\n\n- It works\n- Should it be fast?\n"})
    done = run(agentos_argv("requirements", "--repo", str(repo), "--max-iterations", "1"), cwd=repo)
    assert done.returncode == 0
    text = (repo / "docs/lld/drafts/q.md").read_text()
    assert "\nStatus: Draft\n" in text
    assert text.endswith(
        "## Open review\n\nREVISE\n\n- Requirements without a test scenario: "
        "R2.\n\nGive every requirement one scenario in '4. Test scenarios'.\n"
    )
    trail = sorted((repo / ".agentos/runs").iterdir())[0] / "items/brief-q/attempt-1/iteration-1"
    assert sorted(p.name for p in trail.iterdir()) == [
        "draft-prompt.md",
        "draft.md",
        "review-prompt.md",
        "review.md",
    ]


def agent_script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\ncat > /dev/null\n" + body)
    script.chmod(0o755)
    return f"cmd:{script}"


def test_a_reviewer_without_a_verdict_fails_the_item_clearly(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"a.md": GOOD_BRIEF})
    reviewer = agent_script(tmp_path, "echo 'Looks good to me'\n")
    done = run(
        agentos_argv("requirements", "--repo", str(repo), "--reviewer", reviewer, "--retries", "0"),
        cwd=repo,
    )
    assert done.returncode == 1
    assert (
        "brief-a failed: the reviewer's answer must start with APPROVED or REVISE on its "
        "first line (or check one in a '[x] APPROVED' list, or say 'Verdict: APPROVED'); it "
        "started with: 'Looks good to me'"
    ) in done.stderr
    assert not (repo / "docs/lld/drafts").exists()


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("### /etc/passwd\n```\nx\n```\n", "absolute paths are not allowed"),
        ("### ../outside.py\n```python\nx\n```\n", "'..' is not allowed"),
        ("### src/../../x.py\n```\nx\n```\n", "'..' is not allowed"),
        ("### src\\\\win.py\n```\nx\n```\n", "contains a backslash"),
        ("### .git/config\n```\nx\n```\n", "agents may not write it (git's own folder)"),
    ],
)
def test_an_unsafe_path_in_the_answer_fails_the_item_and_writes_nothing(
    tmp_path: Path, answer: str, why: str
) -> None:
    repo = make_repo(tmp_path, llds={"LLD-1.md": APPROVED_LLD})
    good = "### src/fine.py\n```python\nprint('fine')\n```\n"
    agent = agent_script(tmp_path, f"cat <<'EOF'\n{good}{answer}EOF\n")
    done = run(
        agentos_argv("implement", "--repo", str(repo), "--implementer", agent, "--retries", "0"),
        cwd=repo,
    )
    assert done.returncode == 1
    assert "lld-1 failed: the agent's answer has an unsafe path" in done.stderr
    assert why in done.stderr and "nothing was written" in done.stderr
    assert not (repo / ".agentos/worktrees/lld-1/src/fine.py").exists()
    assert branch_files(repo, "agentos/lld-1") == []
    assert not (tmp_path / "outside.py").exists()


def test_an_answer_without_files_is_a_failed_attempt_and_writes_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, llds={"LLD-2.md": APPROVED_LLD})
    agent = agent_script(tmp_path, "echo 'Sure! Here is the implementation you asked for.'\n")
    done = run(
        agentos_argv(
            "implement",
            "--repo",
            str(repo),
            "--implementer",
            agent,
            "--retry-backoff",
            "0",
            "--edits",
            "text",
        ),
        cwd=repo,
    )
    assert done.returncode == 1
    assert (
        "lld-2 failed: the implementer's answer has no files (a '### path' line, then a fenced "
        "block); it started with: 'Sure! Here is the implementation you asked for.'; nothing "
        "was written"
    ) in done.stderr
    assert summary(repo)["lld-2"].startswith("failed: the implementer's answer has no files")
    run_dir = sorted((repo / ".agentos/runs").iterdir())[-1]
    attempts = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert [a["status"] for a in attempts] == ["failed", "failed"]  # retried per --retries
    assert branch_files(repo, "agentos/lld-2") == []
    # and a rerun does not take it for done
    again = run(agentos_argv("implement", "--repo", str(repo), "--dry-run"), cwd=repo)
    assert again.stdout.splitlines()[-1] == "1 pending item"


def test_lld_without_a_files_changed_table_is_implemented_in_a_module_of_its_own(
    tmp_path: Path,
) -> None:
    text = (REPO / "examples/demo-repo/docs/lld/active/105-read-only-links.md").read_text()
    repo = make_repo(tmp_path, llds={"105-links.md": text})
    done = run(agentos_argv("implement", "--repo", str(repo), "--test-cmd", "true"), cwd=repo)
    assert done.returncode == 0, done.stderr
    assert branch_files(repo, "agentos/lld-105") == ["src/lld_105.py", "tests/test_lld_105.py"]


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """A folder nobody can write into, root included (chattr +i), or skip."""
    folder.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if made.returncode != 0:
        folder.chmod(0o555)
        probe = folder / ".probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            folder.chmod(0o755)
            pytest.skip("cannot make a read-only folder here (root without chattr)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


@pytest.mark.parametrize("parallel", [[], ["-j", "2"]], ids=["sequential", "parallel"])
def test_a_read_only_output_folder_is_found_before_any_agent_runs(
    tmp_path: Path, parallel: list[str]
) -> None:
    repo = make_repo(tmp_path, {"a.md": GOOD_BRIEF, "b.md": GOOD_BRIEF.replace(b"Good", b"Fine")})
    out = repo / "docs/lld/drafts"
    calls = tmp_path / "calls"
    agent = tmp_path / "agent.sh"
    agent.write_text(f"#!/bin/sh\necho call >> {calls}\necho APPROVED\n")
    agent.chmod(0o755)
    with read_only(out):
        done = run(
            agentos_argv("requirements", "--repo", str(repo), "--drafter", f"cmd:{agent}",
                         *parallel),
            cwd=repo,
        )  # fmt: skip
        assert list(out.iterdir()) == []  # no probe left behind
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"agentos: error: cannot write to {out}: ")
    assert "Operation not permitted" in done.stderr or "Permission denied" in done.stderr
    assert done.stderr.endswith(
        "agentos requirements writes its results there. Make it writable and run again "
        "(nothing was started)\n"
    )
    assert not calls.exists()  # no agent was called
    assert not (repo / ".agentos" / "runs").exists()


def test_an_unwritable_run_directory_is_found_before_anything_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (tmp_path / "items.txt").write_text("a\n")
    with read_only(runs):
        done = run(
            agentos_argv("run", "--items", "items.txt", "--run-dir", str(runs / "r"), "--",
                         "touch", "ran"),
            cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"cannot write to {runs / 'r'}: " in done.stderr
    assert not (tmp_path / "ran").exists()


def test_an_unwritable_worktree_folder_is_found_before_any_agent_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, llds={"LLD-3.md": APPROVED_LLD})
    out = repo / ".agentos" / "worktrees"
    calls = tmp_path / "calls"
    agent = tmp_path / "agent.sh"
    agent.write_text(f"#!/bin/sh\necho call >> {calls}\n")
    agent.chmod(0o755)
    with read_only(out):
        done = run(agentos_argv("implement", "--repo", str(repo), "--implementer",
                                f"cmd:{agent}", "-j", "2"), cwd=repo)  # fmt: skip
        assert list(out.iterdir()) == []
    assert done.returncode == 2, done.stderr
    assert f"agentos: error: cannot write to {out}: " in done.stderr
    assert not calls.exists() and not (repo / ".agentos" / "runs").exists()


def test_bundle_parser_reads_fences_of_any_length() -> None:
    answer = (
        "Intro text.\n\n### `docs/guide.md`\n````markdown\n# Guide\n```sh\nrun it\n```\n````\n\n"
        "### src/app.py\n~~~python\nprint('hi')\n~~~\n\n## Not a file\nprose\n"
    )
    files = parse_answer(answer)
    assert [(f.path, f.content) for f in files] == [
        ("docs/guide.md", "# Guide\n```sh\nrun it\n```\n"),
        ("src/app.py", "print('hi')\n"),
    ]


@pytest.mark.parametrize(
    "answer",
    [
        "### a.py\n```\nnever closed\n",
        "### a.py\n```\nx\n```\n### a.py\n```\ny\n```\n",
    ],
)
def test_bundle_parser_rejects_broken_answers(answer: str) -> None:
    with pytest.raises(ItemError):
        parse_answer(answer)


@pytest.mark.parametrize("path", ["a/b/c.py", "./x.py", "tests/test_x.py", "deep/./y.md"])
def test_safe_paths(path: str) -> None:
    assert ".." not in check_path(path)


def test_lld_parsers_read_the_demo_llds() -> None:
    text = APPROVED_LLD
    assert lld.status_of(text) == "approved"
    assert lld.title_of(text, "x") == "Pin notes to the top of a notebook"
    assert [r for r, _ in lld.requirements(text)] == ["R1", "R2", "R3"]
    assert [s.requirement for s in lld.scenarios(text)] == ["R1", "R2", "R3"]
    assert [f.path for f in lld.files_changed(text) or []] == [
        "src/notes/model.py",
        "src/notes/listing.py",
        "src/ui/note_menu.py",
    ]
    assert lld.uncovered_requirements(text) == []


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_make_run_requirements_then_run_implement_parallel_4_on_a_scratch_copy(
    tmp_path: Path,
) -> None:
    """The README's demo: briefs to reviewed LLDs, then every approved LLD to a verified branch."""
    demo = tmp_path / "demo-repo"

    def make(target: str, run_dir: str) -> subprocess.CompletedProcess[str]:
        env = clean_env(AGENTOS_MOCK_LATENCY="0.2")
        for name in ("AGENTOS_DRAFTER", "AGENTOS_IMPLEMENTER"):  # the Makefile names the mock
            env.pop(name)
        return subprocess.run(
            ["make", "-s", "-C", str(REPO), target, "PARALLEL=4", f"DEMO_DIR={demo}",
             f"ARGS=--run-dir {tmp_path / run_dir}"],
            capture_output=True, text=True, timeout=190, env=env,
        )  # fmt: skip

    drafted = make("run-requirements", "run-1")
    assert drafted.returncode == 0, drafted.stderr[-3000:]
    assert "12 items: 12 done" in drafted.stderr
    approved = sorted(p.name for p in (demo / "docs/lld/active").glob("*.md"))
    drafts = sorted(p.name for p in (demo / "docs/lld/drafts").glob("*.md"))
    assert len(approved) - 7 + len(drafts) == 12  # the demo ships 7 LLDs, one a Draft
    implemented = make("run-implement", "run-2")
    assert implemented.returncode == 0, implemented.stderr[-3000:]
    count = len(approved) - 1  # all but the demo's own Draft
    assert f"{count} items: {count} done ({count} verified)" in implemented.stderr
    branches = subprocess.run(
        ["git", "-C", str(demo), "branch", "--list", "agentos/*"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(branches) == count
    assert "agentos/lld-csv-export" in branches
    shutil.rmtree(demo)
