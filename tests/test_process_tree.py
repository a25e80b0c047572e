"""The run-tag sweep against a process tree that keeps changing while it is swept."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from functools import partial

from agentos.workflows.parallel.process_tree import RUN_TAG_ENV, kill_tagged, tagged_processes
from conftest import clean_env, reap_adopted_zombies, wait_until_gone


def test_the_sweep_catches_processes_forked_while_it_runs() -> None:
    """A tagged shell that daemonises a new `sleep` every few milliseconds: a single scan-then-kill
    pass kills the shell but misses what it forked after the scan (seen in CI as a `sleep 30`
    outliving a sequential run)."""
    for trial in range(6):  # a single scan-then-kill pass left a survivor in about 1 trial in 3
        run_id = f"sweep-{uuid.uuid4().hex[:8]}"
        spawner = subprocess.Popen(
            ["sh", "-c", "while :; do setsid sleep 30 & sleep 0.001; done"],
            env=clean_env(**{RUN_TAG_ENV: f"{run_id}/1"}),
            start_new_session=True,
        )
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
