"""The benchmark harness, at tiny sizes, so that it cannot rot. The full run (`make bench`)
stays out of CI; targets are checked there, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import ALL
from conftest import REPO, clean_env

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def test_bench_smoke_runs_every_scenario(tmp_path: Path) -> None:
    done = subprocess.run(
        # the executor's scenarios; the rate ones (20 s at smoke size) have test_rate_bench_smoke
        [sys.executable, "-m", "bench", "--smoke", "--only", ",".join(ALL), "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (report_file,) = tmp_path.glob("*-smoke.json")
    report = json.loads(report_file.read_text())
    assert set(report["results"]) == set(ALL)
    results = report["results"]
    assert results["governor_roundtrip"]["series"]["calls_per_second"]["median"] > 0
    # correctness checks the harness makes are real even at tiny sizes
    for name in ("output_heavy", "line_writer", "block_writer"):
        assert results[name]["line_check"] == "every line whole, attributed and in order"
    assert results["scale"]["measured"]["joblog_correct"] is True
    assert [row["workers"] for row in results["scaling"]["table"]] == [1, 2, 3]
    assert all(row["no keys"] > 0 for row in results["scaling"]["table"])
    assert (
        "| scenario | target | measured | verdict |"
        in (tmp_path / report_file.name.replace(".json", ".md")).read_text()
    )
