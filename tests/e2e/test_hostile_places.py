"""A cloned repository and a reused run directory are data: nothing agentos writes follows a
symlink out of the place it means to write, and run directories are private to the user."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from support.processes import REPO, agentos_argv, clean_env, items_file, only_run_dir, run

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    repo = tmp_path / "work" / "clone"
    repo.parent.mkdir()
    shutil.copytree(REPO / "examples" / "demo-repo", repo)
    return repo


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text("the user's precious file\n")
    return path


def test_a_committed_lock_file_link_cannot_truncate_a_file_outside(
    clone: Path, victim: Path
) -> None:
    locks = clone / ".agentos" / "locks"
    locks.mkdir(parents=True)
    os.symlink("../../../../victim.txt", locks / "requirements.lock")
    assert (locks / "requirements.lock").resolve() == victim
    done = run(agentos_argv("requirements", "--repo", str(clone), "--dry-run"), cwd=clone.parent)
    assert done.returncode == 0  # a dry run takes no lock
    done = run(agentos_argv("requirements", "--repo", str(clone)), cwd=clone.parent)
    assert done.returncode == 2, done.stderr
    assert "requirements.lock is a symbolic link" in done.stderr
    assert done.stderr.count("\n") == 1
    assert victim.read_text() == "the user's precious file\n"


def test_a_committed_lld_folder_link_is_refused_before_any_agent_runs(
    clone: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(clone / "docs" / "lld")
    os.symlink("../../../outside", clone / "docs" / "lld")
    done = run(agentos_argv("requirements", "--repo", str(clone)), cwd=clone.parent)
    assert done.returncode == 2, done.stderr
    assert "docs/lld is a symbolic link" in done.stderr
    assert list(outside.iterdir()) == []
    assert not (clone.parent / ".agentos").exists()  # refused before the run directory


def test_an_lld_target_that_is_a_link_fails_its_item_and_leaves_the_target(
    clone: Path, victim: Path
) -> None:
    drafts = clone / "docs" / "lld" / "active"  # where an approved LLD lands
    drafts.mkdir(parents=True, exist_ok=True)
    os.symlink(victim, drafts / "dark-mode.md")
    done = run(
        agentos_argv("requirements", "--repo", str(clone), "--force"),
        cwd=clone.parent,
        env=clean_env(AGENTOS_MOCK_LATENCY="0"),
    )
    assert done.returncode == 1, done.stderr
    assert "dark-mode.md is a symbolic link" in done.stderr
    assert victim.read_text() == "the user's precious file\n"
    assert (drafts / "dark-mode.md").is_symlink()


def test_a_brief_linking_outside_the_repository_is_not_sent_to_an_agent(
    clone: Path, victim: Path
) -> None:
    os.symlink(victim, clone / "ideas" / "active" / "secret.md")
    os.symlink("dark-mode.md", clone / "ideas" / "active" / "inside.md")  # inside: fine
    done = run(agentos_argv("requirements", "--repo", str(clone), "--dry-run"), cwd=clone.parent)
    assert done.returncode == 0, done.stderr
    assert "skipped 1 file that links outside" in done.stderr
    assert "secret" not in done.stdout
    assert "brief-inside" in done.stdout


def test_the_default_run_directory_is_not_made_through_a_link(tmp_path: Path, victim: Path) -> None:
    work = tmp_path / "work"
    (work / ".agentos").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, work / ".agentos" / "runs")
    items = items_file(tmp_path / "items.txt", ["a"])
    done = run(agentos_argv("run", "--items", str(items), "--", "true"), cwd=work)
    assert done.returncode == 2, done.stderr
    assert ".agentos/runs is a symbolic link" in done.stderr
    assert list(elsewhere.iterdir()) == []


def test_links_planted_in_a_reused_run_directory_are_not_written_through(
    tmp_path: Path, victim: Path
) -> None:
    items = items_file(tmp_path / "items.txt", ["a", "b"])
    options = ["run", "-j", "2", "--items", str(items)]
    done = run(agentos_argv(*options, "--", "sh", "-c", "echo out of $0"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = only_run_dir(tmp_path)
    for name in ("logs/item-1.log", "metrics.jsonl", ".draining", "journal.jsonl"):
        (run_dir / name).unlink(missing_ok=True)
        os.symlink(victim, run_dir / name)
    again = [*options, "--run-dir", str(run_dir), "--", "sh", "-c", "echo again $0"]
    done = run(agentos_argv(*again), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "journal.jsonl is a symbolic link" in done.stderr
    (run_dir / "journal.jsonl").unlink()
    done = run(agentos_argv(*again), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "item-1.log is a symbolic link" in done.stderr
    assert "[item-1] again a" in done.stdout  # the output still reaches the terminal
    assert victim.read_text() == "the user's precious file\n"


def test_run_directories_are_private_and_files_honour_the_umask(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["a"])
    done = run(
        [
            "sh",
            "-c",
            'umask 077; exec "$@"',
            "sh",
            *agentos_argv("run", "-j", "1", "--items", str(items), "--", "echo", "hello"),
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    run_dir = only_run_dir(tmp_path)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    # and under the usual umask 022, the directory is still private
    done = run(
        agentos_argv("run", "--items", str(items), "--", "true"),
        cwd=tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(only_run_dir(tmp_path / "x").stat().st_mode) == 0o700


@pytest.mark.skipif(os.getuid() != 0, reason="making a directory of another user needs root")
def test_an_existing_run_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    items = items_file(tmp_path / "items.txt", ["a"])
    done = run(
        agentos_argv("run", "--run-dir", str(theirs), "--items", str(items), "--", "true"),
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "belongs to another user (uid 65534)" in done.stderr
    assert list(theirs.iterdir()) == []
    assert json.dumps(done.stderr).count("\\n") == 1


def test_a_drain_flag_left_by_a_killed_run_does_not_stop_the_next(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["a", "b"])
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / ".draining").write_text("")  # a SIGKILLed parent never removes it
    done = run(
        agentos_argv(
            "run", "-j", "2", "--run-dir", str(run_dir), "--items", str(items), "--", "echo", "hi"
        ),
        cwd=tmp_path,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "[item-2] hi b" in done.stdout
