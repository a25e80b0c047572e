"""`agentos status` and `agentos logs` against real runs, at each phase: running, draining after
Ctrl+C, finished, and a parent killed with SIGKILL. Items wait for a file the test creates, so
every phase lasts as long as the test needs it, with no timing assumptions."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.processes import (
    REPO,
    Finished,
    Live,
    agentos_argv,
    clean_env,
    items_file,
    only_run_dir,
    run,
    scoped_pids,
    wait_until_gone,
)

from agentos.rundir.journal import read_journal
from agentos.rundir.state import read_state

pytestmark = pytest.mark.timeout(90)

KEYS = "sk-test-status-aaaaaaaa1111,sk-test-status-bbbbbbbb2222"
#: prints, then waits for ./release (the run's working directory) to exist
BLOCKED = ["sh", "-c", "echo start $0; while [ ! -e release ]; do sleep 0.05; done; echo end $0"]


def status(workdir: Path, *args: str) -> Finished:
    return run(agentos_argv("status", *args), cwd=workdir)


def status_json(workdir: Path, *args: str) -> dict[str, Any]:
    done = status(workdir, "--json", *args)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something true (the parent writes its state about once a
    second); the timeout only keeps a broken run from hanging the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_while_running_then_done(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(4)])
    env = clean_env(AGENTOS_CREDENTIALS=KEYS)
    live = Live(agentos_argv("run", "-j", "2", "--items", str(items), "--", *BLOCKED), workdir, env)
    live.wait_for("start", count=2)

    data = until(
        lambda: (d := status_json(workdir)) and len(d["running"]) == 2 and d,
        "two running items in state.json",
    )
    assert data["state"] == "running" and data["phase"] == "running"
    assert data["command"] == "run" and data["pid"] == live.pid and data["parent_alive"] is True
    assert data["counts"] == {"running": 2, "pending": 2}
    assert data["items"] == 4
    assert sorted(r["id"] for r in data["running"]) == ["item-1", "item-2"]
    assert sorted(r["key"] for r in data["running"]) == ["key-1", "key-2"]
    assert all(r["attempt"] == 1 and r["elapsed"] >= 0 for r in data["running"])
    assert {k["label"]: k["state"] for k in data["keys"]} == {"key-1": "leased", "key-2": "leased"}
    assert set(data) >= {"started", "heartbeat", "elapsed", "items_per_minute", "eta_seconds"}

    text = status(workdir)
    assert text.returncode == 0, text.stderr
    assert "state     running" in text.stdout
    assert "items     4: 2 running, 2 pending" in text.stdout
    assert "item-1" in text.stdout and "key-1" in text.stdout and "leased" in text.stdout
    run_dir = only_run_dir(workdir)
    for name in ("state.json", "summary.json"):
        assert "sk-test" not in text.stdout
        if (run_dir / name).exists():
            assert "sk-test" not in (run_dir / name).read_text()

    (workdir / "release").touch()
    assert live.finish().returncode == 0
    data = status_json(workdir, str(run_dir))
    assert data["state"] == "done" and data["exit_code"] == 0
    assert data["counts"] == {"done": 4} and data["running"] == []
    assert data["items_per_minute"] > 0 and data["eta_seconds"] is None
    # the keys as they were at the end (the key server is gone by the last write)
    leases = {k["label"]: k["leases"] for k in data["keys"]}
    assert sorted(leases) == ["key-1", "key-2"] and sum(leases.values()) == 4
    assert "sk-test" not in (run_dir / "state.json").read_text()

    runs = status(workdir, "--runs")
    assert runs.returncode == 0, runs.stderr
    lines = runs.stdout.splitlines()
    assert lines[0].split()[:3] == ["started", "(UTC)", "command"]
    assert len(lines) == 2
    assert "run" in lines[1] and "4 done" in lines[1] and run_dir.name in lines[1]


def test_a_running_item_is_timed_from_its_start_not_its_hand_over(workdir: Path) -> None:
    """A worker is handed its next attempt while it still runs the one before; that attempt
    was listed as running since the hand-over, a whole item too long (seen: "6s" for an item
    running 1 s)."""
    items = items_file(workdir / "items.txt", ["one", "two"])
    live = Live(
        agentos_argv(
            "run", "-j", "1", "--items", str(items), "--", "sh", "-c", "sleep 1.5; echo $0"
        ),
        workdir,
    )
    run_dir = until(lambda: list((workdir / ".agentos" / "runs").glob("*")), "the run directory")[0]
    second = until(
        lambda: [r for r in (read_state(run_dir) or {}).get("running", []) if r["id"] == "item-2"],
        "item-2 running in state.json",
    )[0]
    live.finish()
    first = next(r for r in read_journal(run_dir).records if r["item"] == "item-1")
    first_ended = first["started"] + first["runtime"]
    # begun when the first ended (the hand-over was ~1.5 s before that)
    assert abs(second["started"] - first_ended) < 0.5, (second, first_ended)


def test_status_draining_after_sigint_then_stopped(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(5)])
    live = Live(agentos_argv("run", "-j", "2", "--items", str(items), "--", *BLOCKED), workdir)
    live.wait_for("start", count=2)
    live.interrupt(signal.SIGINT)
    live.wait_for("stopping: waiting for 2 running items", stream="err")

    data = until(
        lambda: (d := status_json(workdir)) and d["state"] == "draining" and d,
        "the draining phase in state.json",
    )
    assert len(data["running"]) == 2
    assert "state     draining" in status(workdir).stdout

    (workdir / "release").touch()
    assert live.finish().returncode == 130
    data = status_json(workdir)
    assert data["state"] == "stopped by SIGINT" and data["exit_code"] == 130
    assert data["stop_reason"] == "SIGINT"
    assert data["counts"] == {"done": 2, "not run": 3}
    assert "state     stopped by SIGINT, exit 130" in status(workdir).stdout


def test_status_of_a_parent_killed_with_sigkill(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b"])
    live = Live(agentos_argv("run", "--items", str(items), "--", *BLOCKED), workdir)
    live.wait_for("start")
    until(lambda: status_json(workdir)["running"], "the running item in state.json")

    live.interrupt(signal.SIGKILL, group=False)  # the parent only: as the OOM killer does
    live.finish()
    data = status_json(workdir)
    assert data["state"] == "ended without a summary (parent gone)"
    assert data["phase"] == "gone" and data["parent_alive"] is False
    assert data["running"] == [] and data["eta_seconds"] is None
    # nothing runs under a dead parent: what was running was cut off, what waited never ran
    assert data["counts"] == {"interrupted": 1, "not run": 1}
    shown = status(workdir).stdout
    assert "state     ended without a summary (parent gone)" in shown
    assert "items     2: 1 interrupted, 1 not run" in shown and "running" not in shown
    assert "(parent gone)" in status(workdir, "--runs").stdout

    # the item the dead parent had started is ours to end
    (workdir / "release").touch()
    assert wait_until_gone(scoped_pids, timeout=10.0) == []


def test_logs_separates_attempts_of_a_retried_item(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["x"])
    flaky = "echo try $0; test -e ok || { touch ok; echo first fails >&2; exit 1; }"
    argv = ["--retries", "1", "--retry-backoff", "0", "--items", str(items), "--", "sh", "-c"]
    done = run(agentos_argv("run", *argv, flaky), cwd=workdir)
    assert done.returncode == 0, done.stderr
    run_dir = only_run_dir(workdir)

    logs = run(agentos_argv("logs", str(run_dir), "item-1"), cwd=workdir)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert len(lines) == 5, lines
    assert lines[0].startswith("==> item-1 attempt 1, started ") and lines[0].endswith(" <==")
    assert lines[1:3] == ["try x", "first fails"]
    assert lines[3].startswith("==> item-1 attempt 2, started ")
    assert lines[4] == "try x"
    # -f on an item that is already final prints the same and ends
    follow = run(agentos_argv("logs", str(run_dir), "item-1", "-f"), cwd=workdir, timeout=20)
    assert follow.returncode == 0 and follow.stdout == logs.stdout


def test_logs_follow_waits_for_a_pending_item_to_start(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b"])
    live = Live(agentos_argv("run", "-j", "1", "--items", str(items), "--", *BLOCKED), workdir)
    live.wait_for("start a")
    run_dir = only_run_dir(workdir)
    follow = Live(agentos_argv("logs", str(run_dir), "item-2", "-f"), workdir)
    follow.wait_for("has not started yet", stream="err")
    (workdir / "release").touch()
    assert live.finish().returncode == 0
    followed = follow.finish(timeout=20)
    assert followed.returncode == 0, followed.stderr
    assert "start b" in followed.stdout and "end b" in followed.stdout
    typo = run(agentos_argv("logs", str(run_dir), "item-9", "-f"), cwd=workdir)
    assert typo.returncode == 2 and "no item item-9" in typo.stderr  # the run is over


def test_logs_follow_ends_when_the_item_is_final(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b"])
    live = Live(agentos_argv("run", "-j", "2", "--items", str(items), "--", *BLOCKED), workdir)
    live.wait_for("start", count=2)
    run_dir = only_run_dir(workdir)
    follow = Live(agentos_argv("logs", str(run_dir), "item-2", "-f"), workdir)
    follow.wait_for("start b")
    (workdir / "release").touch()
    followed = follow.finish(timeout=30)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines()[1:] == ["start b", "end b"]
    assert live.finish().returncode == 0


@pytest.mark.parametrize(
    "argv",
    [
        ("status", "{tmp}"),
        ("status", "{tmp}/missing"),
        ("logs", "{tmp}", "item-1"),
    ],
)
def test_not_a_run_directory_is_one_line_exit_2(workdir: Path, argv: tuple[str, ...]) -> None:
    (workdir / "empty").mkdir()
    args = [a.format(tmp=workdir / "empty") for a in argv]
    done = run(agentos_argv(*args), cwd=workdir)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("agentos: error: ")


def test_status_with_no_runs_and_an_unknown_item(workdir: Path) -> None:
    done = status(workdir)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "no runs under ./.agentos/runs" in done.stderr
    items = items_file(workdir / "items.txt", ["a"])
    done = run(agentos_argv("run", "--items", str(items), "--", "true"), cwd=workdir)
    assert done.returncode == 0, done.stderr
    unknown = run(agentos_argv("logs", str(only_run_dir(workdir)), "item-9"), cwd=workdir)
    assert unknown.returncode == 2 and "no item item-9 in" in unknown.stderr


def test_watch_redraws_until_the_run_ends_and_ctrl_c_exits_0(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a"])
    live = Live(agentos_argv("run", "--items", str(items), "--", *BLOCKED), workdir)
    live.wait_for("start")
    watch = Live(agentos_argv("status", "--watch", "0.2", "--json"), workdir)
    watch.wait_for('"phase": "running"', count=2)  # drawn, then drawn again: one JSON a line
    (workdir / "release").touch()
    assert live.finish().returncode == 0
    ended = watch.finish(timeout=20)  # the run ended: so does the watch
    assert ended.returncode == 0 and ended.stderr == ""
    assert json.loads(ended.stdout.splitlines()[-1])["state"] == "done"

    again = Live(agentos_argv("status", "--watch", "0.2", "--runs"), workdir)  # no watch
    assert again.finish(timeout=20).returncode == 0
    stuck = Live(agentos_argv("status", "--watch", "5"), workdir)
    stuck.wait_for("state     done")
    assert stuck.finish(timeout=20).returncode == 0  # a finished run: one draw, no wait


def test_runs_as_json_and_under_another_folder(workdir: Path, tmp_path: Path) -> None:
    items = items_file(workdir / "items.txt", ["a"])
    assert (
        run(agentos_argv("run", "--items", str(items), "--", "true"), cwd=workdir).returncode == 0
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = run(
        agentos_argv("status", "--runs", "--json", str(workdir / ".agentos" / "runs")),
        cwd=elsewhere,
    )
    assert listed.returncode == 0, listed.stderr
    (one,) = json.loads(listed.stdout)
    assert one["state"] == "done" and one["counts"] == {"done": 1}
    none = run(agentos_argv("status", "--runs", str(elsewhere / "nope")), cwd=elsewhere)
    assert none.returncode == 2 and "is not a folder of runs" in none.stderr


def test_a_state_file_that_cannot_be_written_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agentos.rundir.state import StateWriter

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    writer = StateWriter(not_a_dir, "run", time.time())
    for _ in range(3):
        assert writer.due(event=True) or writer.broken
        writer.write({"phase": "running"})
    assert writer.broken and not writer.due(event=True)
    warnings = [r for r in caplog.records if "state.json" in r.getMessage()]
    assert len(warnings) == 1


def test_status_says_what_the_workflow_said_of_done_items(tmp_path: Path) -> None:
    """A requirements run ends "12 done (5 Draft, 7 Approved)": a Draft is not an approved
    LLD, and status (and the run list) said only "12 done"."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "demo-repo", repo)
    done = run(
        agentos_argv("requirements", "--repo", str(repo), "--max-iterations", "1", "-j", "2"),
        cwd=tmp_path,
        env=clean_env(AGENTOS_MOCK_LATENCY="0"),
    )
    assert done.returncode == 0, done.stderr
    summary_line = done.stderr.strip().splitlines()[-1]
    said = summary_line.split(": ", 1)[1].split(" in ")[0]  # "12 done (5 Draft, 7 Approved)"
    assert "Draft" in said
    data = status_json(tmp_path)
    assert data["details"] and sum(data["details"].values()) == data["counts"]["done"]
    assert f"items     12: {said}" in status(tmp_path).stdout
    assert said in status(tmp_path, "--runs").stdout
    if importlib.util.find_spec("plotly") is not None:
        page = run(agentos_argv("report", "-o", "-"), cwd=tmp_path).stdout
        assert f"<h1>agentos requirements: {said}</h1>" in page
        assert "done (Draft)" in page  # the items table too


def _state_dir(tmp_path: Path, **state: Any) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "state.json").write_text(json.dumps(state))
    return run_dir


def test_started_ago_and_elapsed_agree_while_running(tmp_path: Path) -> None:
    """A run 3.96 s old read "started 3s ago" beside "elapsed 4s": the elapsed time was rounded
    to a tenth (4.0) and then cut to whole seconds, the start only cut."""
    from agentos.commands.status import render
    from agentos.rundir.status import status_data

    run_dir = _state_dir(
        tmp_path,
        command="run",
        pid=os.getpid(),  # alive: this test
        host=socket.gethostname(),
        started=1000.0,
        heartbeat=1003.5,
        phase="running",
        counts={"running": 1},
    )
    now = 1003.96
    lines = render(status_data(run_dir, now), now)
    assert any(line.startswith("started ") and line.endswith("(3s ago)") for line in lines)
    assert "elapsed   3s" in lines


def test_logs_without_a_run_dir_reads_the_latest_run(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["first"])
    assert (
        run(agentos_argv("run", "--items", str(items), "--", "echo", "{}"), cwd=workdir).returncode
        == 0
    )
    items_file(workdir / "items.txt", ["second"])
    assert (
        run(agentos_argv("run", "--items", str(items), "--", "echo", "{}"), cwd=workdir).returncode
        == 0
    )
    runs = sorted((workdir / ".agentos" / "runs").iterdir())
    assert len(runs) == 2

    latest = run(agentos_argv("logs", "item-1"), cwd=workdir)
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout.splitlines()[1:] == ["second"]
    earlier = run(agentos_argv("logs", str(runs[0]), "item-1"), cwd=workdir)
    assert earlier.stdout.splitlines()[1:] == ["first"]

    forgot = run(agentos_argv("logs", str(runs[0])), cwd=workdir)
    assert forgot.returncode == 2 and forgot.stderr == (
        f"agentos: error: which item? agentos logs {runs[0]} ITEM\n"
    )
    nothing = run(agentos_argv("logs"), cwd=workdir)
    assert nothing.returncode == 2 and nothing.stderr.startswith("agentos: error: which item?")


def test_counts_read_as_the_summary_line_has_them() -> None:
    from agentos.rundir.status import counts_text

    said = counts_text({"done": 4970, "failed": 30}, {"Approved": 4970})
    assert said == "4,970 done (4,970 Approved), 30 failed"
