"""The parent's signal handling, in a fresh interpreter (the mask and pending signals belong to
the process, and pytest's own threads would take a process-directed signal)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from support.processes import PYTHON, REPO, clean_env

SCRIPT = textwrap.dedent(
    """
    import os, signal
    from agentos.engine.shutdown import ShutdownState, handle_signals, spawn_guard
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


# A Ctrl+C while the CLI's modules load, delivered inside a weakref callback of the import system
# (importlib's module locks have one): Python prints "Exception ignored ... KeyboardInterrupt" and
# drops the exception. The hook below makes that happen at the same place every time.
DROPPED_CTRL_C = textwrap.dedent(
    """
    import json, signal, sys, weakref
    class Hook:
        def find_spec(self, name, path, target=None):
            if name == "agentos.commands.cli":
                sys.meta_path.remove(self)
                class Obj: pass
                obj = Obj()
                ref = weakref.ref(obj, lambda _: signal.raise_signal(signal.SIGINT))
                del obj
            return None
    sys.meta_path.insert(0, Hook())
    sys.argv = ["agentos"] + json.loads(sys.argv[1])
    from agentos.__main__ import main
    main()
    """
)


def with_a_dropped_ctrl_c(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", DROPPED_CTRL_C, json.dumps(argv)],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_ctrl_c_dropped_while_modules_load_stops_the_run(tmp_path: Path) -> None:
    """Seen in CI: the dropped KeyboardInterrupt was the user's only Ctrl+C, and the run went on
    to do all 12 items and exit 0."""
    items = tmp_path / "items.txt"
    items.write_text("a\nb\n")
    run_dir = tmp_path / "run"
    argv = ["run", "--items", str(items), "--run-dir", str(run_dir), "--", "echo", "{}"]
    done = with_a_dropped_ctrl_c(argv)
    assert done.returncode == 130, done.stderr
    assert "stopped by SIGINT" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert done.stdout == ""  # no item ran
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {item["status"] for item in summary["items"]} == {"not run"}


def test_a_ctrl_c_dropped_before_a_short_command_still_exits_130(tmp_path: Path) -> None:
    items = tmp_path / "items.txt"
    items.write_text("a\n")
    argv = ["run", "--dry-run", "--items", str(items), "--", "echo", "{}"]
    done = with_a_dropped_ctrl_c(argv)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines()[-1] == "agentos: interrupted"
    assert "Traceback" not in done.stderr
