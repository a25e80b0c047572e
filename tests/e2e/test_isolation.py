"""The test suite never touches an agentos run it did not start.

A developer runs `make test` while an overnight batch runs on the same machine; CI runs beside
other jobs. Here an unrelated `agentos run` (another scope: to the suite it is somebody else's) is
going the whole time a second pytest process runs some of the suite's most process-hungry tests,
whose leftover checks kill what they find. The inner suite must pass and the unrelated run must
finish every item, untouched.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest
from support.processes import (
    NO_PLUGINS_ENV,
    PYTHON,
    REPO,
    SCOPE_ENV,
    Live,
    agentos_argv,
    clean_env,
    scoped_processes,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

#: tests whose agentos runs start workers, items, daemons and process trees, and whose fixtures
#: then look for (and kill) leftovers
INNER_TESTS = (
    "tests/e2e/test_signals.py::test_double_sigint_terminates_within_three_seconds",
    "tests/e2e/test_signals.py::test_parent_sigkill_takes_workers_and_items_down",
    "tests/chaos/test_hostile_items.py::test_daemonised_grandchildren_do_not_hang_or_outlive_the_run",
)


def test_suite_leaves_an_unrelated_run_alone(tmp_path: Path) -> None:
    release = tmp_path / "release"
    items = tmp_path / "items.txt"
    items.write_text("one\ntwo\n")
    bystander_env = clean_env()
    bystander_env[SCOPE_ENV] = "somebody-else"  # not this test's processes, nor the inner suite's
    script = f"echo started $0; while [ ! -e {release} ]; do sleep 0.1; done; echo finished $0"
    bystander = Live(
        agentos_argv("run", "-j2", "--items", str(items), "--", "sh", "-c", script),
        tmp_path,
        env=bystander_env,
    )
    bystander.wait_for("started", count=2)
    running_before = long_lived("somebody-else")
    assert len(running_before) >= 4  # the agentos parent, its 2 workers, 2 item shells

    inner = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", *INNER_TESTS],
        cwd=REPO,
        env={k: v for k, v in clean_env().items() if k not in (SCOPE_ENV, NO_PLUGINS_ENV)},
        capture_output=True,
        text=True,
        timeout=200,
    )

    still_running = long_lived("somebody-else")
    release.touch()
    finished = bystander.finish(timeout=30)
    assert inner.returncode == 0, inner.stdout[-3000:] + inner.stderr[-2000:]
    assert set(running_before) <= set(still_running), "the inner suite killed the unrelated run"
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "[item-1] finished one" in finished.stdout
    assert "[item-2] finished two" in finished.stdout


def long_lived(scope: str) -> set[int]:
    """The unrelated run's lasting processes. Its items keep forking `sleep 0.1`s, which for an
    instant after the fork are still called `sh`: only what two looks 0.3 s apart see counts."""
    first = {p.pid for p in scoped_processes(scope)}
    time.sleep(0.3)
    return first & {p.pid for p in scoped_processes(scope) if not _is_sleep(p)}


def _is_sleep(proc: psutil.Process) -> bool:
    """A `sleep` (or one that has just exited, as they do every 0.1 s: seen in CI as
    NoSuchProcess from name())."""
    try:
        return "sleep" in proc.name()
    except psutil.NoSuchProcess:
        return True
