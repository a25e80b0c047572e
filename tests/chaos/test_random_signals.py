"""Signals at seeded random moments: during start-up, dispatch, mid-item and the summary.

Replay a failure with the same moments: AGENTOS_CHAOS_SEED=<seed> make test.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from support.chaos import (
    TALLY,
    assert_llds_whole,
    assert_no_orphans,
    assert_no_secrets,
    briefs_repo,
    journal_done,
    key_file,
    rng,
)
from support.processes import Finished, Live, agentos_argv, clean_env, run

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

TRIALS = 20
#: what Python says when a KeyboardInterrupt cuts its own start-up short
PYTHON_START_ERRORS = ("Fatal Python error: init_import_site", "Could not import runpy module")
RUN_SECONDS = 1.6  # about how long the uninterrupted run below takes here


def requirements(repo: Path, run_dir: Path, keys: Path) -> list[str]:
    return agentos_argv(
        "requirements",
        "--repo",
        str(repo),
        "-j",
        "4",
        "--run-dir",
        str(run_dir),
        "--credentials-file",
        str(keys),
    )


def python_start_failed(finished: Finished) -> bool:
    """A signal while Python starts (importing `site`, or `runpy` for `python -m`), before any
    code of agentos can run, is Python's own start-up error (exit 1): nothing of the run exists
    yet."""
    return finished.returncode == 1 and finished.stderr.startswith(PYTHON_START_ERRORS)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigint_at_a_random_moment(tmp_path: Path, trial: int) -> None:
    moment = rng(f"sigint-{trial}").uniform(0.0, RUN_SECONDS)
    repo = briefs_repo(tmp_path)
    keys = key_file(tmp_path)
    run_dir = tmp_path / "run"
    env = clean_env(AGENTOS_MOCK_LATENCY="0.05")
    live = Live(requirements(repo, run_dir, keys), repo, env=env)
    time.sleep(moment)
    live.interrupt(signal.SIGINT)
    first = live.finish(timeout=60)
    TALLY["signal cases"] += 1
    written = assert_llds_whole(repo)
    done = journal_done(run_dir)
    # the interrupt landed while Python itself was starting, before any code of agentos ran:
    # killed by it (-2), or, during the import of `site`, Python's own fatal error (exit 1)
    in_python_start = first.returncode == -2 or python_start_failed(first)
    # 0: the run had already finished
    assert first.returncode in (130, 0) or in_python_start, (
        moment,
        first.returncode,
        first.stderr[-1500:],
    )
    if first.returncode == 0:
        assert len(written) == 12
    if not in_python_start:
        assert "Traceback" not in first.stderr, first.stderr[-3000:]
    assert {f"brief-{slug}" for slug in written} == done  # done <=> its LLD is there, whole
    assert_no_orphans(session=live.pid)
    assert_no_secrets(first.stdout, first.stderr, dirs=(run_dir, repo / "docs"))

    rerun_dir = tmp_path / "rerun"
    again = run(requirements(repo, rerun_dir, keys), cwd=repo, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    rest = 12 - len(written)
    if rest:
        assert f"{rest} item{'s' if rest != 1 else ''}: {rest} done" in again.stderr
    else:
        assert again.stdout.strip() == "Nothing to process"
    assert len(assert_llds_whole(repo)) == 12
    assert_no_orphans()
    assert_no_secrets(again.stdout, again.stderr, dirs=(rerun_dir,) if rerun_dir.exists() else ())


HANGING = ["sh", "-c", "echo start $0; sleep 60 & sleep 60"]


@pytest.mark.parametrize("trial", range(10))
def test_two_signals_at_random_moments_end_everything_within_3_s(
    tmp_path: Path, trial: int
) -> None:
    chance = rng(f"double-{trial}")
    first_sig, second_sig = chance.choice(
        [
            (signal.SIGINT, signal.SIGINT),
            (signal.SIGTERM, signal.SIGTERM),
            (signal.SIGINT, signal.SIGTERM),
        ]
    )
    items = tmp_path / "items.txt"
    items.write_text("".join(f"{n}\n" for n in range(8)))
    live = Live(
        agentos_argv(
            "run",
            "-j",
            "4",
            "--credentials-file",
            str(key_file(tmp_path, 3)),
            "--items",
            str(items),
            "--",
            *HANGING,
        ),
        tmp_path,
    )
    time.sleep(chance.uniform(0.0, 0.8))
    live.interrupt(first_sig, group=first_sig == signal.SIGINT)
    time.sleep(chance.uniform(0.0, 0.3))
    t0 = time.monotonic()
    live.interrupt(second_sig, group=second_sig == signal.SIGINT)
    done = live.finish(timeout=15)
    elapsed = time.monotonic() - t0
    TALLY["signal cases"] += 1
    assert elapsed < 3.0, f"took {elapsed:.1f} s after the second signal"
    expected = 143 if first_sig == signal.SIGTERM else 130
    if not python_start_failed(done):
        ended = (done.returncode, done.stderr[-1500:])
        assert done.returncode in (expected, -int(first_sig)), ended
        assert "Traceback" not in done.stderr
    assert_no_orphans(session=live.pid, timeout=1.0)
    summary = tmp_path / ".agentos" / "runs"
    if summary.exists():  # the run had got as far as creating its run directory
        (run_dir,) = summary.iterdir()
        report = json.loads((run_dir / "summary.json").read_text())
        assert not [k for k in report["keys"] if k["state"] == "leased"]
        assert_no_secrets(done.stdout, done.stderr, dirs=(run_dir,))
