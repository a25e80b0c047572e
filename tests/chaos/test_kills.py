"""kill -9 of a worker, of the key server and of the parent, at seeded random moments."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from support.chaos import TALLY, assert_no_orphans, assert_no_secrets, key_file, rng
from support.processes import Live, agentos_argv, loky_workers, tagged_pids, wait_until_gone

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]


def items_file(directory: Path, count: int) -> Path:
    path = directory / "items.txt"
    path.write_text("".join(f"{n}\n" for n in range(count)))
    return path


SLOW = ["sh", "-c", "echo start $0; sleep 0.4; echo end $0"]


@pytest.mark.parametrize("trial", range(10))
def test_kill_9_of_a_random_worker(tmp_path: Path, trial: int) -> None:
    chance = rng(f"worker-{trial}")
    live = Live(
        agentos_argv(
            "run",
            "-j",
            "3",
            "--retry-backoff",
            "0.1",
            "--credentials-file",
            str(key_file(tmp_path, 3)),
            "--run-dir",
            str(tmp_path / "run"),
            "--items",
            str(items_file(tmp_path, 9)),
            "--",
            *SLOW,
        ),
        tmp_path,
    )
    live.wait_for("start", count=chance.randint(1, 5), timeout=30)
    time.sleep(chance.uniform(0.0, 0.3))
    workers = loky_workers(live.pid)
    if workers:
        chance.choice(workers).kill()
    done = live.finish(timeout=60)
    TALLY["kill cases"] += 1
    assert done.returncode == 0, done.stderr[-2000:]  # the victim's item was retried
    report = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {i["status"] for i in report["items"]} == {"done"}
    # every item ran to its end at least once (one that ended just as its worker died runs again)
    assert {line for line in done.stdout.splitlines() if " end " in line} == {
        f"[item-{n + 1}] end {n}" for n in range(9)
    }
    leaked = [k["label"] for k in report["keys"] if k["state"] == "leased"]
    TALLY["key leases lost"] += len(leaked)
    assert leaked == [], "a lease died with the worker"
    assert_no_orphans(session=live.pid)
    assert_no_secrets(done.stdout, done.stderr, dirs=(tmp_path / "run",))


def key_server_of(parent: int) -> psutil.Process | None:
    for child in psutil.Process(parent).children():
        if "spawn_main" in " ".join(child.cmdline()):
            return child
    return None


def test_kill_9_of_the_key_server_stops_the_run_cleanly(tmp_path: Path) -> None:
    live = Live(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--credentials-file",
            str(key_file(tmp_path, 2)),
            "--run-dir",
            str(tmp_path / "run"),
            "--items",
            str(items_file(tmp_path, 10)),
            "--",
            *SLOW,
        ),
        tmp_path,
    )
    live.wait_for("start", count=3)
    server = key_server_of(live.pid)
    assert server is not None
    server.kill()
    done = live.finish(timeout=30)  # no hang
    TALLY["kill cases"] += 1
    assert done.returncode == 1
    assert done.stderr.rstrip().endswith(
        "no new item can get a key, so the run stops after the running items. Finished work "
        "is kept: rerun the same command to continue"
    )
    assert "Traceback" not in done.stderr
    report = json.loads((tmp_path / "run" / "summary.json").read_text())
    statuses = [i["status"] for i in report["items"]]
    assert "done" in statuses and set(statuses) <= {"done", "not run", "failed"}
    assert_no_orphans(session=live.pid)
    assert_no_secrets(done.stdout, done.stderr, dirs=(tmp_path / "run",))


@pytest.mark.parametrize("trial", range(5))
def test_kill_9_of_the_parent_takes_everything_down_within_2_s(tmp_path: Path, trial: int) -> None:
    chance = rng(f"parent-{trial}")
    live = Live(
        agentos_argv(
            "run",
            "-j",
            "3",
            "--credentials-file",
            str(key_file(tmp_path, 3)),
            "--items",
            str(items_file(tmp_path, 6)),
            "--",
            "sh",
            "-c",
            "echo start $0; sh -c 'sleep 60' & sleep 60",
        ),
        tmp_path,
    )
    live.wait_for("start", count=chance.randint(1, 3))
    time.sleep(chance.uniform(0.0, 0.3))
    family = [p.pid for p in psutil.Process(live.pid).children(recursive=True)]
    os.kill(live.pid, signal.SIGKILL)
    live.finish(timeout=10)
    TALLY["kill cases"] += 1

    def alive() -> list[int]:
        left = []
        for pid in family:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    left.append(pid)
            except psutil.NoSuchProcess:
                pass
        return left + tagged_pids()

    left = wait_until_gone(alive, timeout=2.0)
    TALLY["orphan checks"] += 1
    TALLY["orphans found"] += len(left)
    assert left == [], f"outlived the parent's SIGKILL by 2 s: {left}"
