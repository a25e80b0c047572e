"""The parent's signal handling, in a fresh interpreter (the mask and pending signals belong to
the process, and pytest's own threads would take a process-directed signal)."""

from __future__ import annotations

import subprocess
import textwrap

from conftest import PYTHON, REPO, clean_env

SCRIPT = textwrap.dedent(
    """
    import os, signal
    from agentos.workflows.parallel.shutdown import ShutdownState, handle_signals, spawn_guard
    seen = []
    state = ShutdownState(grace=60)
    with handle_signals(state, on_signal=seen.append):
        with spawn_guard():  # workers are being forked: SIGINT waits, SIGTERM does not
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # let the SIGTERM handler run here, inside the guard
                pass
            print("inside", [signal.Signals(s).name for s in seen])
        print("after", [signal.Signals(s).name for s in seen], state.exit_code, state.phase)
    """
)


def test_a_ctrl_c_held_back_by_the_spawn_guard_still_counts_as_the_first_signal() -> None:
    """Ctrl+C, then SIGTERM, while workers are being forked: the SIGINT was pending (blocked so
    that the children start with it blocked) when the SIGTERM's handler ran, which took the
    SIGTERM for the first signal: exit 143 and "stopped by SIGTERM" for a run the user stopped
    with Ctrl+C (seen in CI)."""
    done = subprocess.run(
        [PYTHON, "-c", SCRIPT], cwd=REPO, env=clean_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "inside ['SIGINT', 'SIGTERM']"
    # the SIGINT, delivered when the guard ends, is not counted a second time
    assert lines[1] == "after ['SIGINT', 'SIGTERM'] 130 terminating"
