"""Real signals to a real agentos process group, the way a terminal sends Ctrl+C.

Each case checks the exit code, which items finished, the user-facing messages, and (through the
autouse fixture plus an explicit session check) that nothing agentos started is left running.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from support.processes import (
    Live,
    agentos_argv,
    items_file,
    only_run_dir,
    run,
    session_pids,
    tagged_pids,
    wait_until_gone,
)

pytestmark = pytest.mark.timeout(90)

SLOW_ITEM = ["sh", "-c", "echo start $0; sleep 1.5; echo end $0"]
HANGING_ITEM = ["sh", "-c", "echo start $0; sleep 60 & sleep 60; echo never $0"]


def statuses(workdir: Path) -> dict[str, str]:
    summary = json.loads((only_run_dir(workdir) / "summary.json").read_text())
    return {i["id"]: i["status"] for i in summary["items"]}


def assert_session_empty(live: Live) -> None:
    left = wait_until_gone(lambda: session_pids(live.pid), timeout=3.0)
    assert left == [], f"processes left in the run's session: {left}"


def test_first_sigint_drains_running_items_then_exits_130(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(8)])
    live = Live(agentos_argv("run", "-j", "3", "--items", str(items), "--", *SLOW_ITEM), workdir)
    live.wait_for("start", count=3)
    live.interrupt(signal.SIGINT)
    done = live.finish(timeout=30)
    assert done.returncode == 130, done.stderr
    assert "stopping: waiting for 3 running items (Ctrl+C again to terminate)" in done.stderr
    assert done.stdout.count("start") == 3 and done.stdout.count("end") == 3  # finished, whole
    result = statuses(workdir)
    assert sorted(result.values()).count("done") == 3
    assert list(result.values()).count("not run") == 5
    run_dir = only_run_dir(workdir).resolve()
    assert f"stopped by SIGINT; to resume: agentos run --resume {run_dir}\n" in done.stderr
    assert_session_empty(live)

    # a rerun with --resume finishes exactly the rest
    again = run(
        agentos_argv(
            "run",
            "-j",
            "3",
            "--resume",
            str(only_run_dir(workdir)),
            "--items",
            str(items),
            "--",
            *SLOW_ITEM,
        ),
        cwd=workdir,
    )
    assert again.returncode == 0, again.stderr
    ran = sorted(line.split()[0] for line in again.stdout.splitlines() if " start " in line)
    first_done = sorted(f"[{k}]" for k, v in result.items() if v == "done")
    assert len(ran) == 5 and not set(ran) & set(first_done)
    assert "8 items: 8 done (3 in an earlier pass)" in again.stderr


def test_double_sigint_terminates_within_three_seconds(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(6)])
    live = Live(agentos_argv("run", "-j", "3", "--items", str(items), "--", *HANGING_ITEM), workdir)
    live.wait_for("start", count=3)
    live.interrupt(signal.SIGINT)
    live.wait_for("stopping: waiting for 3 running items", stream="err")
    t0 = time.monotonic()
    live.interrupt(signal.SIGINT)
    done = live.finish(timeout=10)
    elapsed = time.monotonic() - t0
    assert done.returncode == 130
    assert elapsed < 3.0, f"terminate took {elapsed:.1f} s"
    assert "never" not in done.stdout
    assert list(statuses(workdir).values()).count("interrupted") == 3
    assert_session_empty(live)
    assert wait_until_gone(tagged_pids, timeout=2.0) == []


def test_sigterm_drains_and_exits_143(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(5)])
    live = Live(agentos_argv("run", "-j", "2", "--items", str(items), "--", *SLOW_ITEM), workdir)
    live.wait_for("start", count=2)
    live.interrupt(signal.SIGTERM, group=False)  # like `kill PID`
    done = live.finish(timeout=30)
    assert done.returncode == 143
    assert done.stdout.count("end") == 2
    assert "stopped by SIGTERM" in done.stderr
    assert_session_empty(live)


def test_grace_period_ends_in_termination(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b"])
    live = Live(
        agentos_argv(
            "run", "-j", "2", "--grace", "0.5", "--items", str(items), "--", *HANGING_ITEM
        ),
        workdir,
    )
    live.wait_for("start", count=2)
    t0 = time.monotonic()
    live.interrupt(signal.SIGINT)
    done = live.finish(timeout=15)
    assert done.returncode == 130
    assert 0.4 < time.monotonic() - t0 < 4.0
    assert set(statuses(workdir).values()) == {"interrupted"}
    assert_session_empty(live)


def test_parent_sigkill_takes_workers_and_items_down(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(4)])
    live = Live(agentos_argv("run", "-j", "3", "--items", str(items), "--", *HANGING_ITEM), workdir)
    live.wait_for("start", count=3)
    # 3 workers, each with sh and two sleeps (sh may still be forking the second one)
    deadline = time.monotonic() + 5
    while len(tagged_pids()) < 3 * 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(tagged_pids()) >= 3 * 3  # 3 workers, each with sh and two sleeps
    os.kill(live.pid, signal.SIGKILL)
    live.finish(timeout=10)
    left = wait_until_gone(tagged_pids, timeout=2.0)
    assert left == [], f"survived the parent's SIGKILL: {left}"


def test_sequential_sigint_finishes_the_current_item(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b", "c"])
    live = Live(agentos_argv("run", "--items", str(items), "--", *SLOW_ITEM), workdir)
    live.wait_for("start a")
    live.interrupt(signal.SIGINT)
    done = live.finish(timeout=20)
    assert done.returncode == 130
    assert done.stdout == "start a\nend a\n"
    assert "stopping: waiting for 1 running item" in done.stderr
    assert statuses(workdir) == {"item-1": "done", "item-2": "not run", "item-3": "not run"}


def test_sequential_double_sigint_kills_the_current_item(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b"])
    live = Live(agentos_argv("run", "--items", str(items), "--", *HANGING_ITEM), workdir)
    live.wait_for("start a")
    live.interrupt(signal.SIGINT)
    live.wait_for("stopping", stream="err")
    t0 = time.monotonic()
    live.interrupt(signal.SIGINT)
    done = live.finish(timeout=10)
    assert done.returncode == 130
    assert time.monotonic() - t0 < 3.0
    assert statuses(workdir) == {"item-1": "interrupted", "item-2": "not run"}
    assert_session_empty(live)


def test_sigint_during_startup(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(20)])
    live = Live(agentos_argv("run", "-j", "4", "--items", str(items), "--", *SLOW_ITEM), workdir)
    time.sleep(0.25)  # the parent is importing or spawning workers
    live.interrupt(signal.SIGINT)
    time.sleep(0.2)
    live.interrupt(signal.SIGINT)
    done = live.finish(timeout=15)
    # -2 is "killed by SIGINT", which a shell reports as 130 too: Python ends that way when the
    # interrupt lands while the interpreter is still importing
    assert done.returncode in (130, -2), done.stderr
    assert "Traceback" not in done.stderr
    assert_session_empty(live)


@pytest.mark.parametrize(
    "mode",
    [["-j", "2"], ["--backend", "dask", "-j", "2"], []],
    ids=["parallel", "dask", "sequential"],
)
def test_item_commands_get_sigint_as_a_shell_gives_it(workdir: Path, mode: list[str]) -> None:
    """Workers survive a terminal's Ctrl+C by catching SIGINT, not ignoring it: an ignored signal
    stays ignored across exec, and every command a parallel item started ignored SIGINT (a
    `timeout -s INT` in it timed nothing out) while the same item run sequentially did not."""
    items = items_file(workdir / "items.txt", ["a", "b"])
    argv = agentos_argv(
        "run", *mode, "-q", "--items", str(items), "--", "sh", "-c", "grep SigIgn /proc/self/status"
    )
    # started the way a terminal starts a job: SIGINT at its default
    launcher = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    done = run([argv[0], "-c", launcher, *argv], cwd=workdir, timeout=120)
    assert done.returncode == 0, done.stderr
    masks = [int(line.split()[-1], 16) for line in done.stdout.splitlines() if "SigIgn" in line]
    assert len(masks) == 2
    assert all(not mask & (1 << (signal.SIGINT - 1)) for mask in masks), done.stdout
