"""The run-tag sweep against a process tree that keeps changing while it is swept."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from functools import partial
from pathlib import Path

from pytest import MonkeyPatch
from support.processes import clean_env, reap_adopted_zombies, wait_until_gone

from agentos.item import process_tree
from agentos.item.process_tree import RUN_TAG_ENV, kill_tagged, tagged_processes


def tagged_shell(script: str) -> tuple[str, subprocess.Popen[bytes]]:
    """`sh -c script` in its own session, carrying a fresh run's tag, as an item's command does."""
    run_id = f"sweep-{uuid.uuid4().hex[:8]}"
    shell = subprocess.Popen(
        ["sh", "-c", script],
        env=clean_env(**{RUN_TAG_ENV: f"{run_id}/1"}),
        start_new_session=True,
    )
    return run_id, shell


def test_the_sweep_catches_processes_forked_while_it_runs() -> None:
    """A tagged shell that daemonises a new `sleep` every few milliseconds: a single scan-then-kill
    pass kills the shell but misses what it forked after the scan (seen in CI as a `sleep 30`
    outliving a sequential run)."""
    for trial in range(6):  # a single scan-then-kill pass left a survivor in about 1 trial in 3
        run_id, spawner = tagged_shell("while :; do setsid sleep 30 & sleep 0.001; done")
        try:
            time.sleep(0.2)  # the shell is forking steadily by now
            assert len(tagged_processes(run_id)) > 5
            kill_tagged(run_id)
            reap_adopted_zombies()
            survivors = wait_until_gone(partial(tagged_processes, run_id), timeout=0.5)
            assert survivors == [], f"trial {trial}: the sweep missed {survivors}"
        finally:
            if spawner.poll() is None:
                os.killpg(spawner.pid, 9)
            spawner.wait()
            for pid in tagged_processes(run_id):
                os.kill(pid, 9)


def test_a_child_that_dropped_the_tag_dies_with_its_tagged_parent() -> None:
    """`env -i` (or any program that sets its own environment) starts a child without the run
    tag; its parent has the tag, so the child is still something the run started."""
    run_id, parent = tagged_shell("env -i /bin/sleep 30 & wait")
    try:
        child = wait_for_child(parent.pid)
        assert process_tree.pid_alive(child)
        kill_tagged(run_id)
        parent.wait(timeout=5)
        reap_adopted_zombies()
        assert wait_until_gone(lambda: [child] if process_tree.pid_alive(child) else []) == []
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, 9)
            parent.wait()


def wait_for_child(pid: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                time.sleep(0.05)  # let it exec `sleep`
                return int(children[0])
        time.sleep(0.01)
    raise AssertionError(f"{pid} started no child")


def test_a_fork_under_way_when_its_parent_is_frozen_is_caught(monkeypatch: MonkeyPatch) -> None:
    """SIGSTOP takes effect when the process leaves its current system call: a parent caught in
    fork() makes its child visible only then. A scan right after the SIGSTOPs found nothing new
    and ended the sweep, and the child lived on (1 run in ~60 of the test above, in CI)."""
    parent, child = 4_000_001, 4_000_002  # pids no process has: the signals fail quietly
    polls = {"parent": 0}

    def stat(pid: int) -> tuple[str, int]:
        if pid == parent:
            polls["parent"] += 1
            return ("T", 1) if polls["parent"] > 2 else ("R", 1)
        return ("S", parent) if polls["parent"] > 2 else ("", 0)

    def scan(run_id: str, worker_pid: int | None, children_of: set[int]) -> list[int]:
        return [parent, child] if polls["parent"] > 2 else [parent]

    monkeypatch.setattr(process_tree, "_stat", stat)
    monkeypatch.setattr(process_tree, "tagged_processes", scan)
    assert kill_tagged("run", grace=0) == [parent, child]
