"""What an attempt spent counts whatever ended it: attempts killed by a second Ctrl+C still show
their calls in the summary, and a `--resume --budget` counts them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from support.keys import keys_file
from support.processes import Live, agentos_argv, items_file, only_run_dir, run
from support.rundir import summary
from support.sim import repo_with_briefs, requirements_argv

from bench.provider_sim import Org, ProviderSim

pytestmark = pytest.mark.timeout(120)


def stated_cost_script(folder: Path) -> Path:
    """Reports one $0.30 call, then waits while a file `slow` exists beside it."""
    script = folder / "stated.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo \'{"model": "some-cli-model", "input_tokens": 10, "output_tokens": 10, '
        '"cost_usd": 0.3}\' >> "$AGENTOS_USAGE_FILE"\n'
        "echo called $1\n"
        'while [ -e "$(dirname "$0")/slow" ]; do sleep 0.1; done\n'
    )
    script.chmod(0o755)
    return script


def stop_twice(live: Live) -> None:
    live.interrupt(signal.SIGINT)
    live.wait_for("Ctrl+C again to terminate", stream="err")
    live.interrupt(signal.SIGINT)


def test_killed_attempts_still_count_what_they_reported(workdir: Path) -> None:
    script = stated_cost_script(workdir)
    (workdir / "slow").touch()
    items_file(workdir / "items.txt", ["a", "b", "c", "d"])
    live = Live(agentos_argv("run", "-j", "2", "--items", "items.txt", "--", str(script)), workdir)
    live.wait_for("called", count=2)
    stop_twice(live)
    done = live.finish(timeout=60)
    assert done.returncode == 130, done.stderr
    run_dir = only_run_dir(workdir)
    data = summary(run_dir)
    assert data["totals"] == {"interrupted": 2, "not run": 2}
    assert data["usage"]["calls"] == 2
    assert data["usage"]["cost_usd"] == pytest.approx(0.6)
    assert "usage: 2 calls" in done.stderr
    interrupted = [r for r in map(json.loads, (run_dir / "journal.jsonl").read_text().splitlines())]
    assert [r["usage"]["calls"] for r in interrupted] == [1, 1]

    # the $0.60 the killed attempts spent counts toward the resumed run's budget: the first
    # item (measured: $0.30) makes $0.90, over $0.70, and nothing more starts
    (workdir / "slow").unlink()
    again = run(agentos_argv("run", "--resume", str(run_dir), "--budget", "0.7"), cwd=workdir)
    assert again.returncode == 1, again.stderr
    assert "budget reached: $0.90 of $0.70 spent; 3 items not started" in again.stderr
    assert again.stdout.count("called") == 1


def test_an_http_call_cut_short_by_the_kill_is_counted(tmp_path: Path) -> None:
    """The provider took both calls (and will bill them); the workers were killed before the
    answers came. The summary counts both, their tokens unknown."""
    pytest.importorskip("httpx")
    repo = repo_with_briefs(tmp_path, 2)
    groups = {"sk-spend-key-a-000000": "acme", "sk-spend-key-b-000000": "side"}
    keys = keys_file(tmp_path, "".join(f"{key} group={org}\n" for key, org in groups.items()))
    with ProviderSim([Org("acme"), Org("side")], groups, latency=30) as sim:
        live = Live(requirements_argv(repo, sim.base_url, keys, "-j", "2"), repo)
        deadline = time.monotonic() + 30
        while len(sim.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(sim.calls) == 2
        stop_twice(live)
        done = live.finish(timeout=60)
    assert done.returncode == 130, done.stderr
    usage = summary(only_run_dir(repo))["usage"]
    assert usage["calls"] == 2
    assert usage["unmetered_calls"] == 2
    assert "(2 calls reported no token counts)" in done.stderr
