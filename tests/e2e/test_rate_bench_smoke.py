"""One tiny rate-limit scenario end to end, so that the benchmark cannot rot: the simulator, the
generated repository, agentos against it, and the record `make bench` reports. The targets are
checked by `make bench`, not here."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from support.processes import clean_env

from bench import rate_scenarios
from bench.provider_sim import Org

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def test_a_tiny_scenario_runs_end_to_end_and_reports_its_record(tmp_path: Path) -> None:
    scenario = replace(
        rate_scenarios.BY_ID["rates.one_key"],
        briefs=2,
        orgs=(Org("org-a", rpm=600, tpm=600_000),),
    )
    record = rate_scenarios.run_scenario(
        scenario, tmp_path, env=clean_env(NO_COLOR="1"), timeout_pad=60, latency=0.05
    )
    assert record["exit_code"] == 0, record["agentos_messages_tail"]
    assert not record["timed_out"]
    assert record["items_done"] == record["items_total"] == 2
    assert record["measured"]["done"] == "2/2"
    # two calls per brief, every one answered, nothing refused at these limits
    assert record["successful_calls"] == record["calls_needed"] == 4
    assert record["refused_429"] == 0 and record["429_per_call"] == 0.0
    assert record["wasted_calls"] == 0 and record["quota_refusals_worst_key"] is None
    assert record["tokens_per_call"] > 100  # a real prompt and answer were charged
    # the ideal: 4 calls at 600 per minute, plus one answer's latency
    assert record["ideal_seconds"] == pytest.approx(4 / 10 + 0.05)
    assert 0 < record["elapsed_seconds"] <= record["wall_seconds"]
    assert record["efficiency"] > 0 and 0 < record["efficiency_bursts"] <= 1
    assert record["scenario"]["keys"] == [{"label": "key-1", "org": "org-a"}]
    assert record["per_org"]["org-a"]["ok"] == 4
    assert record["summary"]["totals"] == {"done": 2}
    assert set(record["measured"]) == {"efficiency", "429_per_call", "done", "exit"}
    assert isinstance(record["passed"], bool) and isinstance(record["misses"], list)
    json.dumps(record)  # the report is JSON
    table = rate_scenarios.markdown({scenario.id: record})
    assert "| scenario | ideal s | elapsed s | efficiency | with bursts | 429s per call |" in table
    assert "| (a) one key, high limit: 1 key, 600 RPM, 600000 TPM; 2 briefs |" in table
    lld = tmp_path / "one_key" / "repo" / "docs" / "lld" / "active" / "001-archive.md"
    assert "Status: Approved" in lld.read_text()
