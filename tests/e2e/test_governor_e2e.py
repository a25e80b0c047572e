"""The governor end to end: `agentos requirements --drafter openai:m` against the loopback
provider simulator, which limits organisations the way providers do. Short runs: the efficiency
targets live in bench/rate_scenarios.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.keys import keys_file
from support.processes import agentos_argv, clean_env, run
from support.sim import repo_with_briefs, requirements_argv

from bench.provider_sim import Org, ProviderSim

pytest.importorskip("httpx")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def requirements(repo: Path, sim: ProviderSim, keys: Path, *extra: str) -> list[str]:
    return requirements_argv(repo, sim.base_url, keys, "-j", "8", *extra)


def test_four_keys_of_one_organisation_share_its_budget_without_a_storm(tmp_path: Path) -> None:
    repo = repo_with_briefs(tmp_path, 12)
    keys = {f"sk-org-key-{n}-000000": "org" for n in range(4)}
    # one organisation, 240 requests/min enforced over half a second: two calls at once at most
    with ProviderSim([Org("org", rpm=240)], keys, window_s=0.5, latency=0.05) as sim:
        body = "".join(f"{k} group=org\n" for k in keys)
        done = run(requirements(repo, sim, keys_file(tmp_path, body)), cwd=repo)
        stats = sim.stats()["total"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert stats["ok"] == 24  # two calls a brief, none repeated
    # limits learned from the first answers' headers; pacing keeps the refusals rare
    assert stats["refused_429"] <= 2, stats
    assert "8 workers" not in done.stderr and "only 4 keys" not in done.stderr  # -j 8 kept


def test_a_key_out_of_quota_is_parked_and_the_other_finishes_the_work(tmp_path: Path) -> None:
    repo = repo_with_briefs(tmp_path, 6)
    keys = {"sk-spent-key-000000": "spent", "sk-healthy-key-00000": "healthy"}
    orgs = [Org("spent", rpd=1), Org("healthy", rpm=600)]
    with ProviderSim(orgs, keys, latency=0.05) as sim:
        done = run(
            requirements(repo, sim, keys_file(tmp_path, "".join(f"{k}\n" for k in keys))), cwd=repo
        )
        spent = sim.stats()["keys"]["sk-spent-key-000000"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert spent["quota"] <= 2  # parked after at most two refusals
    # the provider named the organisation: the key joined its group
    assert "key-1: out of quota; group spent parked for the rest of the run" in done.stderr
    state = json.loads((Path(clean_env()["AGENTOS_STATE_DIR"]) / "keys.json").read_text())
    assert [e.get("reason") for e in state.values() if "until" in e] == ["key-1: out of quota"]
    assert "sk-spent" not in json.dumps(state)

    # the next run knows: the parked key is not tried again
    with ProviderSim(orgs, keys, latency=0.05) as sim:
        again = run(
            requirements(
                repo, sim, keys_file(tmp_path, "".join(f"{k}\n" for k in keys)), "--force"
            ),
            cwd=repo,
        )
        assert sim.stats()["keys"].get("sk-spent-key-000000", {}).get("quota", 0) == 0
    assert again.returncode == 0, again.stderr[-3000:]


def test_every_key_out_of_quota_stops_the_run_with_one_line(tmp_path: Path) -> None:
    repo = repo_with_briefs(tmp_path, 4)
    keys = {"sk-only-key-0000000": "spent"}
    with ProviderSim([Org("spent", rpd=2)], keys, latency=0.05) as sim:
        # one item at a time, so that the day's two calls finish exactly one brief
        keys_path = keys_file(tmp_path, "sk-only-key-0000000\n")
        done = run(requirements(repo, sim, keys_path, "-j", "1"), cwd=repo)
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "agentos: error: the only key out of quota for this run; rerun when it is back "
        "(done items are kept)"
    )
    summary = json.loads(
        next((repo / ".agentos" / "runs").iterdir()).joinpath("summary.json").read_text()
    )
    assert summary["totals"].get("done", 0) == 1  # the one brief the quota allowed


def test_random_refusals_keep_the_pace_and_the_run_says_what_it_decided(tmp_path: Path) -> None:
    """A provider that refuses a third of the calls at random (retry-after 1) while its headers
    show plenty left: the group keeps the pace the provider states, each refused call waits its
    second, and the summary, summary.json and `agentos status` count the refusals as noise."""
    repo = repo_with_briefs(tmp_path, 6)
    keys = {"sk-noisy-key-0000000": "org-noisy"}
    with ProviderSim([Org("org-noisy", rpm=600)], keys, latency=0.05, noise=0.3, seed=5) as sim:
        done = run(requirements(repo, sim, keys_file(tmp_path, "sk-noisy-key-0000000\n")), cwd=repo)
        stats = sim.stats()["total"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert stats["ok"] == 12 and stats["noise"] >= 2 and stats["rate"] == 0
    assert "pacing org-noisy at 600 req/min: the limit the provider states" in done.stderr
    assert "rate limited" not in done.stderr  # no refusal held the group
    run_dir = next((repo / ".agentos" / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    (group,) = summary["groups"]
    assert group["group"] == "org-noisy" and group["keys"] == ["key-1"]
    assert group["refusals"] == {"rate": stats["noise"]}
    assert group["noise_refusals"] == stats["noise"]
    assert group["rpm"] == 600 and group["rpm_source"] == "stated"
    assert group["waited_s"] >= stats["noise"] * 0.9  # each refused call waited its second
    table = done.stderr[done.stderr.index("why this pace") :]
    assert f"{stats['noise']} rate ({stats['noise']} as noise)" in table
    assert "the limit the provider states" in table
    shown = run(agentos_argv("status", str(run_dir)), cwd=repo)
    assert shown.returncode == 0, shown.stderr
    pacing = shown.stdout[shown.stdout.index("\npacing\n") :]
    assert "org-noisy" in pacing and "600/min" in pacing and "as noise" in pacing
