"""`agentos keys`: what it shows of each key must be true of the key as the credentials file lists
it now, and of what the last run learned about it: its group, its limits (a group's limit is
every key's in it), whether the provider rejected it, and the pace the last run kept and why."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.keys import keys_file
from support.processes import agentos_argv, clean_env, run
from support.sim import repo_with_briefs, requirements_argv

from agentos.commands.cli import cli
from agentos.governor import parked
from agentos.governor.credentials import make_credentials
from bench.provider_sim import Org, ProviderSim


def keys(path: Path, state: Path) -> list[list[str]]:
    """`agentos keys` with the state in `state`: its rows, split on two spaces or more."""
    result = CliRunner().invoke(
        cli, ["keys", "--credentials-file", str(path)], env={"AGENTOS_STATE_DIR": str(state)}
    )
    assert result.exit_code == 0, result.output
    assert "sk-" not in result.output
    lines = result.output.splitlines()
    header = lines[0].split()
    assert header[:3] == ["key", "fingerprint", "group"]
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines[1:-1]]


def test_a_group_remembered_under_another_label_is_not_shown_for_this_one(
    tmp_path: Path,
) -> None:
    """A key that was key-2 in an earlier run (its group then was its own label, "key-2") and is
    key-1 in today's file is in group key-1, not "key-2"."""
    state = tmp_path / "state"
    _, b = make_credentials(["sk-first-aaaaaaaa", "sk-second-bbbbbbb"])
    old = {b.full_fingerprint: {"label": "key-2", "group": "key-2", "rpm": 60, "calls": 3}}
    state.mkdir()
    (state / "keys.json").write_text(json.dumps(old))
    path = keys_file(tmp_path, "sk-second-bbbbbbb\n")
    (row,) = keys(path, state)
    assert row[0] == "key-1" and row[2] == "key-1"


def test_a_group_the_provider_named_is_remembered(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (a,) = make_credentials(["sk-first-aaaaaaaa"])
    note = {"group": "org-acme", "group_source": "provider", "calls": 3}
    state.mkdir()
    (state / "keys.json").write_text(json.dumps({a.full_fingerprint: note}))
    (row,) = keys(keys_file(tmp_path, "sk-first-aaaaaaaa\n"), state)
    assert row[2] == "org-acme"


def test_every_key_of_a_group_shows_the_group_limit(tmp_path: Path) -> None:
    path = keys_file(
        tmp_path, "sk-one-1111111111 group=acme rpm=60\nsk-two-2222222222 group=acme\n"
    )
    rows = keys(path, tmp_path / "state")
    assert [r[2:4] for r in rows] == [["acme", "60"], ["acme", "60"]]


@pytest.mark.slow  # a requirements run against the provider simulator
def test_a_key_the_provider_rejected_is_not_ok(tmp_path: Path) -> None:
    """The provider answered 401 for one key in the last run: `agentos keys` says so."""
    repo = repo_with_briefs(tmp_path, 2)
    good, bad = "sk-good-key-00000000", "sk-bad-key-000000000"
    with ProviderSim([Org("org", rpm=600)], {good: "org"}, latency=0.05) as sim:
        path = keys_file(tmp_path, f"{good}\n{bad}\n")
        done = run(requirements_argv(repo, sim.base_url, path, "-j", "2"), cwd=repo)
    assert done.returncode == 0, done.stderr[-3000:]
    state = Path(clean_env()["AGENTOS_STATE_DIR"])
    rows = {r[0]: r for r in keys(path, state)}
    assert "rejected by the provider" in " ".join(rows["key-2"])
    assert "ok" in rows["key-1"] and "rejected" not in " ".join(rows["key-1"])
    # the pace the last run kept, and why
    assert "600/min" in " ".join(rows["key-1"])
    assert "the limit the provider states" in " ".join(rows["key-1"])
    listed = run(agentos_argv("keys", "--credentials-file", str(path)), cwd=repo)
    assert "rejected by the provider" in listed.stdout


def test_a_parked_key_is_still_shown_parked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    (a,) = make_credentials(["sk-first-aaaaaaaa"])
    monkeypatch.setenv("AGENTOS_STATE_DIR", str(state))
    parked.save({a.full_fingerprint: (time.time() + 3600, "key-1: out of quota")}, set())
    (row,) = keys(keys_file(tmp_path, "sk-first-aaaaaaaa\n"), state)
    assert any(cell.startswith("parked until") for cell in row)
