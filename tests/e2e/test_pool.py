"""Workers dying mid-item, as a table of crash modes (loky-style): the culprit's attempt fails and
is retried, bystanders are re-run uncounted, the pool is rebuilt, nothing is left running."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.processes import PYTHON, REPO, clean_env, only_run_dir, run
from support.rundir import journal

pytestmark = pytest.mark.timeout(120)

CRASHY = str(REPO / "tests" / "support" / "crashy.py")


def crashy(workdir: Path, *args: str):  # type: ignore[no-untyped-def]
    env = clean_env(PYTHONPATH=f"{REPO / 'tests' / 'support'}{os.pathsep}{REPO}")
    return run([PYTHON, CRASHY, *args], cwd=workdir, env=env)


@pytest.mark.parametrize(
    ("mode", "reason", "pool_breaks"),
    [
        ("sigkill", "worker died (SIGKILL)", True),
        ("os_exit", "worker died (exit 3)", True),
        ("segfault", "worker died (SIGSEGV)", True),
        ("abort", "worker died (SIGABRT)", True),
        ("exception", "ValueError: bad input in the item", False),
        ("sys_exit", "the item called sys.exit(4)", False),
    ],
)
def test_crash_modes(workdir: Path, mode: str, reason: str, pool_breaks: bool) -> None:
    done = crashy(workdir, "--items-spec", f"ok,{mode},ok,ok", "-j", "2", "--retry-backoff", "0.1")
    assert done.returncode == 0, done.stderr
    records = journal(workdir)
    failed = [r for r in records if r["status"] == "failed"]
    assert [(r["item"], r["error"], r["final"]) for r in failed] == [(f"2-{mode}", reason, False)]
    final = {r["item"]: r["status"] for r in records if r["final"]}
    assert set(final.values()) == {"done"} and len(final) == 4
    assert ("restarting the pool (1/10)" in done.stderr) is pool_breaks
    # bystanders were re-run without counting: nobody else has a failed attempt
    assert all(r["item"] == f"2-{mode}" for r in records if r["status"] != "done")


def test_too_many_pool_breaks_stop_the_batch(workdir: Path) -> None:
    spec = ",".join(["sigkill"] * 12)
    done = crashy(workdir, "--items-spec", spec, "--always", "-j", "1", "--retries", "0")
    assert done.returncode == 1
    assert (
        "agentos: error: the worker pool broke 11 times (last: A worker process managed by the "
        "executor was unexpectedly terminated."
    ) in done.stderr
    assert "run sequentially (no --parallel) to see the crash" in done.stderr
    summary = json.loads((only_run_dir(workdir) / "summary.json").read_text())
    assert {i["status"] for i in summary["items"]} == {"failed"}


def test_hung_item_in_python_code_is_timed_out_without_killing_the_worker(workdir: Path) -> None:
    done = crashy(
        workdir,
        "--items-spec",
        "hang,ok",
        "--always",
        "-j",
        "1",
        "--timeout",
        "1",
        "--retries",
        "0",
    )
    assert done.returncode == 1
    records = journal(workdir)
    assert [(r["item"], r["status"]) for r in records] == [("1-hang", "timeout"), ("2-ok", "done")]
    assert records[0]["worker_pid"] == records[1]["worker_pid"]  # the SIGALRM deadline, no kill
