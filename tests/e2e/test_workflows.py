"""The two workflow CLIs, through BOTH entry points each: the script files run as subprocesses
and `agentos requirements` / `agentos implement`."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.processes import REPO, Live, agentos_argv, clean_env, git_repo, run, script_argv

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Entry:
    workflow: str
    argv: Callable[..., list[str]]
    output: str  # where finished items land, relative to the repo
    agent_option: str
    count: int  # pending items in the demo repo
    finished: str  # what an item's output says when its work is in place

    def outputs(self, repo: Path) -> list[str]:
        """What finished items left: LLD files, or verified branches."""
        if self.workflow == "requirements":
            folders = ("docs/lld/active", "docs/lld/drafts")
            made = [p for f in folders for p in (repo / f).glob("*.md") if p.name not in DEMO_LLDS]
            return sorted(str(p.relative_to(repo)) for p in made)
        listing = subprocess.run(
            ["git", "-C", str(repo), "branch", "--list", "agentos/*", "--format=%(refname:short)"],
            capture_output=True,
            text=True,
            check=True,
        )
        return sorted(listing.stdout.split())

    def content(self, repo: Path, output: str) -> str:
        """An LLD's text (without its date), or a branch's tree."""
        if self.workflow == "requirements":
            return re.sub(r"date: \d{4}-\d\d-\d\d", "date: D", (repo / output).read_text())
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", f"{output}^{{tree}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout


#: the approved LLDs the demo ships (the requirements workflow adds its own beside them)
DEMO_LLDS = {p.name for p in (REPO / "examples/demo-repo/docs/lld/active").glob("*.md")}
REQ = dict(
    workflow="requirements",
    output="docs/lld",
    agent_option="--drafter",
    count=12,
    finished="] wrote docs/lld/",
)
IMP = dict(
    workflow="implement",
    output="agentos/",
    agent_option="--implementer",
    count=6,
    finished="] committed ",
)
QUICK_GATE = ("--test-cmd", "true")
ENTRIES = {
    "requirements-script": Entry(
        argv=lambda *a: script_argv("run_requirements_workflow.py", *a), **REQ
    ),  # type: ignore[arg-type]
    "requirements-cli": Entry(argv=lambda *a: agentos_argv("requirements", *a), **REQ),  # type: ignore[arg-type]
    # the repository's tests are not what these tests are about (tests/test_implement.py runs
    # the real ones): a gate that passes at once keeps each run to its agent and git work
    "implement-script": Entry(
        argv=lambda *a: script_argv("run_implement_from_lld.py", *QUICK_GATE, *a), **IMP
    ),  # type: ignore[arg-type]
    "implement-cli": Entry(argv=lambda *a: agentos_argv("implement", *QUICK_GATE, *a), **IMP),  # type: ignore[arg-type]
}


@pytest.fixture(params=list(ENTRIES))
def entry(request: pytest.FixtureRequest) -> Entry:
    return ENTRIES[request.param]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    repo = tmp_path / "demo-repo"
    shutil.copytree(REPO / "examples" / "demo-repo", repo)
    return git_repo(repo)


def spy_agent(tmp_path: Path) -> str:
    """A cmd: agent that records that it was called (for 'no agent called' checks)."""
    spy = tmp_path / "spy-agent.sh"
    spy.write_text(f"#!/bin/sh\ntouch {tmp_path}/agent-was-called\ncat >/dev/null\necho APPROVED\n")
    spy.chmod(0o755)
    return f"cmd:{spy}"


def item_lines(text: str) -> list[str]:
    """The items' own lines: not agentos messages, not the summary table."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("[agentos]", "agentos:", "item ", "brief-", "lld-")) or re.match(
            r"^\d+ items?:", line
        ):
            continue
        lines.append(line)
    return lines


def test_parallel_4_does_every_item(entry: Entry, demo: Path) -> None:
    done = run(entry.argv("--repo", str(demo), "--parallel", "4"), cwd=demo)
    assert done.returncode == 0, done.stderr
    assert len(entry.outputs(demo)) == entry.count
    prefixed = [line for line in done.stderr.splitlines() if re.match(r"^\[(brief|lld)-", line)]
    assert prefixed and all(re.match(r"^\[(brief-[a-z0-9-]+|lld-\d+)\] \S", p) for p in prefixed)
    assert f"{entry.count} items: {entry.count} done" in done.stderr


def test_missing_parallel_value_is_a_usage_error(entry: Entry, demo: Path) -> None:
    done = run(entry.argv("--repo", str(demo), "--parallel"), cwd=demo)
    assert done.returncode == 2
    assert "Option '--parallel' requires an argument" in done.stderr
    assert "Traceback" not in done.stderr
    assert entry.outputs(demo) == []


@pytest.mark.parametrize("parallel", [[], ["--parallel", "2"]], ids=["plain", "parallel-2"])
def test_dry_run_lists_and_touches_nothing(
    entry: Entry, demo: Path, tmp_path: Path, parallel: list[str]
) -> None:
    before = sorted(p for p in demo.rglob("*"))
    done = run(
        entry.argv(
            "--repo", str(demo), "--dry-run", *parallel, entry.agent_option, spy_agent(tmp_path)
        ),
        cwd=demo,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["id", "title", "source"]
    assert lines[-1] == f"{entry.count} pending items"
    assert len(lines) == entry.count + 2
    assert sorted(p for p in demo.rglob("*")) == before  # nothing created, not even .agentos
    assert not (tmp_path / "agent-was-called").exists()


def test_more_than_ten_workers_are_capped(entry: Entry, demo: Path) -> None:
    done = run(entry.argv("--repo", str(demo), "-j", "20", "--dry-run"), cwd=demo)
    assert done.returncode == 0
    assert done.stderr.count("agentos: warning: requested 20 workers, capping to 10") == 1


def test_sequential_output_is_the_parallel_output_without_prefixes(
    entry: Entry, demo: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-copy"
    shutil.copytree(demo, other)
    plain = run(entry.argv("--repo", str(demo)), cwd=demo)
    parallel = run(entry.argv("--repo", str(other), "-j", "3"), cwd=other)
    assert plain.returncode == parallel.returncode == 0
    assert plain.stdout == parallel.stdout == ""
    sequential_lines = [_steady(line) for line in item_lines(plain.stderr)]
    assert sequential_lines and not any(line.startswith("[") for line in sequential_lines)
    per_item: dict[str, list[str]] = {}
    for line in parallel.stderr.splitlines():
        match = re.match(r"^\[((?:brief|lld)-[^\]]+)\] (.*)$", line)
        if match:
            per_item.setdefault(match.group(1), []).append(_steady(match.group(2)))
    # sequential runs items in order: its lines are each item's lines, one item after another
    assert sequential_lines == [
        line for item in sorted(per_item, key=_order) for line in per_item[item]
    ]
    assert entry.outputs(demo) == entry.outputs(other)
    for output in entry.outputs(demo):
        assert entry.content(demo, output) == entry.content(other, output)


def _steady(line: str) -> str:
    """A line without what differs between two runs of the same work: test times, commit ids."""
    line = re.sub(r"\b\d+\.\d+s\b", "Ts", line)
    return re.sub(r"\b[0-9a-f]{10}\b", "COMMIT", line)


def _order(item_id: str) -> tuple[int, str]:
    return (int(item_id[4:]), "") if item_id.startswith("lld-") else (0, item_id)


def test_summary_and_exit_code_when_an_item_fails(entry: Entry, demo: Path) -> None:
    if entry.workflow == "requirements":
        (demo / "ideas/active/broken.md").write_bytes(b"")
        bad = "brief-broken"
        reason = "brief broken.md is empty"
    else:
        (demo / "docs/lld/active/LLD-900.md").write_bytes(b"Status: Approved\n\xff\xfe bad bytes\n")
        bad = "lld-900"
        reason = "LLD LLD-900.md is not UTF-8 text (byte 0xff at offset 17); save it as UTF-8"
    done = run(entry.argv("--repo", str(demo), "-j", "3", "--retries", "0"), cwd=demo)
    assert done.returncode == 1
    assert f"[agentos] {bad} failed: {reason}" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(entry.outputs(demo)) == entry.count  # the others finished
    run_dir = next((demo / ".agentos/runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    statuses = {i["id"]: i["status"] for i in summary["items"]}
    assert statuses.pop(bad) == "failed" and set(statuses.values()) == {"done"}
    assert summary["exit_code"] == 1


def test_ctrl_c_keeps_finished_work_and_a_rerun_does_the_rest(entry: Entry, demo: Path) -> None:
    live = Live(
        entry.argv("--repo", str(demo), "-j", "2"), demo, env=clean_env(AGENTOS_MOCK_LATENCY="0.6")
    )
    live.wait_for(entry.finished, stream="err", count=2, timeout=60)
    live.interrupt(signal.SIGINT)
    first = live.finish(timeout=60)
    assert first.returncode == 130, first.stderr
    finished = entry.outputs(demo)
    assert 2 <= len(finished) < entry.count
    for output in finished:  # whole LLDs, verified commits only
        text = entry.content(demo, output)
        if entry.workflow == "requirements":
            assert text.endswith("\n") and "## 6. Definition of done" in text
        else:
            message = subprocess.run(
                ["git", "-C", str(demo), "log", "-1", "--format=%B", output],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert "Agentos-Tests: passed" in message
    again = run(entry.argv("--repo", str(demo), "-j", "4"), cwd=demo)
    assert again.returncode == 0, again.stderr
    assert (
        f"{entry.count - len(finished)} items: {entry.count - len(finished)} done" in again.stderr
    )
    assert len(entry.outputs(demo)) == entry.count
    leftovers = [p.name for p in demo.rglob("*") if p.name.endswith(".tmp") or ".old-" in p.name]
    assert leftovers == []
    if entry.workflow == "implement":  # the interrupted items' worktrees were continued, then went
        assert list((demo / ".agentos/worktrees").iterdir()) == []
        assert "agentos" not in _git(demo, "worktree", "list")


def test_unknown_or_missing_agent_is_a_config_error(entry: Entry, demo: Path) -> None:
    done = run(entry.argv("--repo", str(demo), entry.agent_option, "gpt-9000"), cwd=demo)
    assert done.returncode == 2
    assert done.stderr.startswith(f"agentos: error: {entry.agent_option} 'gpt-9000': unknown agent")
    missing = run(
        entry.argv("--repo", str(demo), entry.agent_option, "cmd:no-such-agent -p"), cwd=demo
    )
    assert missing.returncode == 2
    assert missing.stderr == (
        f"agentos: error: {entry.agent_option} 'cmd:no-such-agent -p': "
        "agent executable not found: no-such-agent; install it or give its "
        "full path\n"
    )
    assert not (demo / ".agentos").exists()


def test_missing_input_folder_names_the_path(entry: Entry, tmp_path: Path) -> None:
    empty_repo = tmp_path / "repo"
    empty_repo.mkdir()
    git_repo(empty_repo)
    done = run(entry.argv("--repo", str(empty_repo)), cwd=tmp_path)
    assert done.returncode == 2
    folder = "ideas/active" if entry.workflow == "requirements" else "docs/lld/active"
    assert f"{empty_repo / folder} does not exist" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_empty_input_folder_is_nothing_to_process(entry: Entry, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    folder = "ideas/active" if entry.workflow == "requirements" else "docs/lld/active"
    (repo / folder).mkdir(parents=True)
    git_repo(repo)
    done = run(entry.argv("--repo", str(repo), "-j", "4"), cwd=repo)
    assert done.returncode == 0
    assert done.stdout == "Nothing to process\n"
    assert not (repo / ".agentos").exists()


def test_two_runs_on_one_repository_never_do_an_item_twice(demo: Path, tmp_path: Path) -> None:
    argv = agentos_argv("requirements", "--repo", str(demo), "-j2")
    first = Live(argv, demo, env=clean_env(AGENTOS_MOCK_LATENCY="0.2"))
    first.wait_for("] wrote docs/lld/", stream="err")
    second = run(argv, cwd=demo, env=clean_env(AGENTOS_MOCK_LATENCY="0.2"))
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1, second.stderr
    assert f"another agentos requirements run is working on {demo}" in second.stderr
    assert f"(pid {first.pid}, run dir " in second.stderr
    assert first.finish(timeout=90).returncode == 0
    runs = sorted((demo / ".agentos" / "runs").iterdir())
    assert len(runs) == 1  # the refused run created no run directory
    done = [json.loads(line) for line in (runs[0] / "journal.jsonl").read_text().splitlines()]
    assert len(done) == 12 and len({r["item"] for r in done}) == 12

    # the lock goes with its holder, however it ends: a killed run leaves none behind
    killed = Live([*argv, "--force"], demo, env=clean_env(AGENTOS_MOCK_LATENCY="0.2"))
    killed.wait_for("] wrote docs/lld/", stream="err")
    killed.interrupt(signal.SIGKILL)
    killed.finish(timeout=30)
    again = run([*argv, "--force"], cwd=demo)
    assert again.returncode == 0, again.stderr
    # another workflow on the same repository is not blocked
    assert (
        "another agentos"
        not in run(agentos_argv("implement", "--repo", str(demo), "--dry-run"), cwd=demo).stderr
    )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout
