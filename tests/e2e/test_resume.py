"""--resume continues the same work: items matched by what they are, not by position; another
run's directory refused; every item in the summary; attempt numbers and audit trails kept; a torn
journal repaired instead of poisoning every later resume; an unwritable run directory refused
before anything runs."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from support.processes import REPO, Live, agentos_argv, clean_env, items_file, only_run_dir, run
from support.rundir import journal, summary

from agentos.item.workflow import Item
from agentos.run.resume import EarlierItem, EarlierPasses, plan_resume

pytestmark = pytest.mark.timeout(120)

# fails while a file fail-<item> exists in the working directory; says what ran otherwise
FLAKY = ["sh", "-c", 'if [ -e "fail-$0" ]; then echo failing $0 >&2; exit 3; fi; echo ran $0']


def run_items(workdir: Path, *extra: str) -> list[str]:
    return agentos_argv("run", *extra, "--items", str(workdir / "items.txt"), "--", *FLAKY)


@pytest.mark.parametrize("parallel", [(), ("-j", "2")], ids=["sequential", "parallel"])
def test_a_changed_input_list_resumes_the_same_work(workdir: Path, parallel: tuple[str]) -> None:
    items_file(workdir / "items.txt", ["a", "b", "c"])
    (workdir / "fail-b").touch()
    first = run(run_items(workdir, "--retries", "0", *parallel), cwd=workdir)
    assert first.returncode == 1, first.stderr
    run_dir = only_run_dir(workdir)

    (workdir / "fail-b").unlink()
    items_file(workdir / "items.txt", ["new", "a", "b", "c"])  # a line inserted at the top
    again = run(run_items(workdir, "--resume", str(run_dir), *parallel), cwd=workdir)
    assert again.returncode == 0, again.stderr
    ran = sorted(line.split()[-1] for line in again.stdout.splitlines() if "ran " in line)
    assert ran == ["b", "new"]  # the failed item and the new one; a and c were done

    rows = {row["title"]: row for row in summary(run_dir)["items"]}
    assert list(rows) == ["new", "a", "b", "c"]  # every item of the run, in input order
    assert all(row["status"] == "done" for row in rows.values())
    assert [rows[t]["earlier_pass"] for t in ("new", "a", "b", "c")] == [False, True, False, True]
    # the work keeps its id (its log and state go on); the new line gets an id nobody used
    assert [rows[t]["id"] for t in ("a", "b", "c")] == ["item-1", "item-2", "item-3"]
    assert rows["new"]["id"] not in ("item-1", "item-2", "item-3")
    assert rows["b"]["attempts"] == 2
    b_attempts = [(r["attempt"], r["status"]) for r in journal(run_dir) if r["item"] == "item-2"]
    assert b_attempts == [(1, "failed"), (2, "done")]
    assert "4 items: 4 done (2 in an earlier pass)" in again.stderr
    log = (run_dir / "logs" / "item-2.log").read_text()
    assert "failing b" in log and "ran b" in log  # both passes in the one item's log

    third = run(run_items(workdir, "--resume", str(run_dir), *parallel), cwd=workdir)
    assert third.returncode == 0 and third.stdout.startswith("Nothing to process (4 already done)")


def test_a_repeated_line_is_two_items_for_resume(workdir: Path) -> None:
    items_file(workdir / "items.txt", ["x", "x"])
    first = run(run_items(workdir), cwd=workdir)
    assert first.returncode == 0, first.stderr
    keys = {r["key"] for r in journal(only_run_dir(workdir))}
    assert len(keys) == 2


def test_resume_refuses_another_runs_directory(workdir: Path) -> None:
    items_file(workdir / "items.txt", ["a"])
    first = run(run_items(workdir), cwd=workdir)
    assert first.returncode == 0
    run_dir = only_run_dir(workdir)
    before = (run_dir / "summary.json").read_bytes()

    other_command = run(
        agentos_argv(
            "run", "--resume", str(run_dir), "--items", str(workdir / "items.txt"), "--", "true"
        ),
        cwd=workdir,
    )
    assert other_command.returncode == 2
    assert other_command.stderr.count("\n") == 1
    assert "it was started with other values (the command 'sh -c" in other_command.stderr
    assert "'true' now); drop the command to resume it as it was started" in other_command.stderr

    repo = workdir / "repo"
    shutil.copytree(REPO / "examples" / "demo-repo", repo)
    other_workflow = run(
        agentos_argv("requirements", "--repo", str(repo), "--resume", str(run_dir)), cwd=workdir
    )
    assert other_workflow.returncode == 2
    assert "it is a run of `agentos run`, not of `agentos requirements`; resume it with: " in (
        other_workflow.stderr
    )
    assert not list((repo / "docs" / "lld").glob("drafts/*.md"))  # nothing ran
    shipped = REPO / "examples" / "demo-repo" / "docs" / "lld" / "active"
    assert sorted(p.name for p in (repo / "docs" / "lld" / "active").iterdir()) == sorted(
        p.name for p in shipped.iterdir()
    )

    both = run(
        run_items(workdir, "--resume", str(run_dir), "--run-dir", str(workdir / "y")), cwd=workdir
    )
    assert both.returncode == 2 and "drop --run-dir" in both.stderr
    assert not (workdir / "y").exists()
    assert (run_dir / "summary.json").read_bytes() == before  # nothing overwritten


def attempt_dirs(state: Path) -> list[str]:
    """The item's attempt trails; none when its first attempt was killed before it made one."""
    if not state.exists():
        return []
    return sorted(p.name for p in state.iterdir() if p.name.startswith("attempt-"))


def test_resume_keeps_earlier_audit_trails(workdir: Path) -> None:
    repo = workdir / "repo"
    shutil.copytree(REPO / "examples" / "demo-repo", repo)
    argv = agentos_argv("requirements", "--repo", str(repo), "-j", "2", "--grace", "0")
    live = Live(argv, repo, env=clean_env(AGENTOS_MOCK_LATENCY="0.3"))
    live.wait_for("] wrote docs/lld/", stream="err")
    live.interrupt(signal.SIGINT)
    assert live.finish(timeout=60).returncode == 130
    run_dir = only_run_dir(repo)
    written = {p.name for p in (repo / "docs" / "lld").glob("*/*.md")}
    cut_short = {
        r["item"]
        for r in journal(run_dir)
        # an item interrupted after its LLD was written is not pending any more: not rerun
        if r["status"] == "interrupted" and f"{r['item'].removeprefix('brief-')}.md" not in written
    }
    assert cut_short, "the grace of 0 s interrupts the item that was running beside the done one"
    trails = {i: attempt_dirs(run_dir / "items" / i) for i in cut_short}
    assert all(t in ([], ["attempt-1"]) for t in trails.values()), trails

    again = run([*argv, "--resume", str(run_dir)], cwd=repo, env=clean_env())
    assert again.returncode == 0, again.stderr
    for item_id, before in trails.items():
        assert attempt_dirs(run_dir / "items" / item_id) == [*before, "attempt-2"]
    data = summary(run_dir)
    assert len(data["items"]) == 12  # every item of the run, this pass's and the earlier's
    assert all(row["status"] == "done" for row in data["items"] if not row["earlier_pass"])


def test_a_torn_journal_line_is_ended_not_glued_to(workdir: Path) -> None:
    items_file(workdir / "items.txt", ["a", "b"])
    assert run(run_items(workdir), cwd=workdir).returncode == 0
    run_dir = only_run_dir(workdir)
    path = run_dir / "journal.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 30])  # last record cut

    again = run(run_items(workdir, "--resume", str(run_dir)), cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "ran b\n"  # the item whose record was lost runs again
    assert "skipped 1 line that is not a record (line 2" in again.stderr
    assert "journal.jsonl ended in a partial line" in again.stderr
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["status"] == "done"

    third = run(run_items(workdir, "--resume", str(run_dir)), cwd=workdir)
    assert third.returncode == 0 and third.stdout.startswith("Nothing to process")


def _chattr(flag: str, path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("target", ["journal.jsonl", "."])
def test_an_unwritable_run_directory_is_refused_before_anything_runs(
    workdir: Path, target: str
) -> None:
    items_file(workdir / "items.txt", ["a", "b"])
    (workdir / "fail-b").touch()
    assert run(run_items(workdir, "--retries", "0"), cwd=workdir).returncode == 1
    run_dir = only_run_dir(workdir)
    (workdir / "fail-b").unlink()
    locked = (run_dir / target).resolve()
    if not _chattr("+i", locked):
        pytest.skip("chattr +i is not available here (root ignores permission bits)")
    try:
        again = run(run_items(workdir, "-j", "2", "--resume", str(run_dir)), cwd=workdir)
    finally:
        _chattr("-i", locked)
    assert again.returncode == 2, again.stderr
    assert again.stderr.startswith("agentos: error: cannot ") and again.stderr.count("\n") == 1
    assert "Traceback" not in again.stderr and again.stdout == ""  # b did not run


def item(item_id: str, key: str, seq: int) -> Item:
    return Item(id=item_id, key=key, seq=seq, title=key)


def test_plan_resume_matches_work_by_key() -> None:
    earlier = EarlierPasses(
        {
            "A": EarlierItem("A", "item-1", attempts=1, done=True),
            "B": EarlierItem("B", "item-2", attempts=2),
            "GONE": EarlierItem("GONE", "item-3", attempts=1),
        }
    )
    now = [item("item-1", "NEW", 1), item("item-2", "A", 2), item("item-3", "B", 3)]
    now.append(item("item-4", "NEW2", 4))
    plan = plan_resume(now, earlier)
    # A was done; GONE is no longer in the input: both reported, only A as done
    assert [(i.id, i.key, b.done) for i, b in plan.done_before] == [
        ("item-1", "A", True),
        ("item-3", "GONE", False),
    ]
    assert plan.done_count == 1
    gone_but_done = EarlierPasses({"A": EarlierItem("A", "item-1", done=True, title="a")})
    assert [(i.id, i.title) for i, _ in plan_resume([], gone_but_done).done_before] == [
        ("item-1", "a")
    ]
    assert [(i.id, i.key) for i in plan.pending] == [
        ("item-1.2", "NEW"),  # item-1 is A's
        ("item-2", "B"),  # B keeps its id, wherever it moved
        ("item-4", "NEW2"),  # nobody used item-4
    ]
    assert plan.attempts_before == {"item-2": 2}
    # an id of work no longer in the input is not handed to other work either
    assert "item-3" not in {i.id for i in plan.pending}
