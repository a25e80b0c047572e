"""The benchmark harness, at tiny sizes, so that it cannot rot. The full run (`make bench`)
stays out of CI; targets are checked there, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import REPO, clean_env

from bench.__main__ import ALL

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bench ARGS` from the repository, as `make bench` runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        env=clean_env(),
    )


def test_bench_smoke_runs_every_scenario(tmp_path: Path) -> None:
    # the executor's scenarios; the rate ones (20 s at smoke size) have test_rate_bench_smoke
    done = bench("--smoke", "--only", ",".join(ALL), "--out", str(tmp_path))
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


def test_a_baseline_tree_runs_as_a_third_contender(tmp_path: Path) -> None:
    """`--baseline-src DIR`: agentos from another source tree, interleaved with this one, so a
    change is measured against old code in the same run."""
    baseline = tmp_path / "old"
    baseline.mkdir()
    archive = subprocess.run(
        ["git", "archive", "HEAD", "agentos"], cwd=REPO, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
    marker = baseline / "imported"
    init = baseline / "agentos" / "__init__.py"
    init.write_text(init.read_text() + f"\nopen({str(marker)!r}, 'a').write('x')\n")
    out = tmp_path / "out"
    only = "fixed_cost,python_items"
    done = bench("--smoke", "--only", only, "--baseline-src", str(baseline), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.exists()  # the baseline's agentos is what ran
    (report_file,) = out.glob("*-smoke.json")
    report = json.loads(report_file.read_text())
    assert report["baseline_src"] == str(baseline)
    fixed = report["results"]["fixed_cost"]
    assert "agentos (baseline)" in fixed["series"]
    assert fixed["baseline"]["agentos_over_baseline"] > 0
    assert "agentos (baseline)" in report["results"]["python_items"]["per_item_ms"]
    assert "Baseline: agentos from" in report_file.with_suffix(".md").read_text()


def test_a_baseline_without_agentos_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = bench("--smoke", "--baseline-src", str(tmp_path))
    assert done.returncode == 2
    assert "no agentos/__main__.py there" in done.stderr.splitlines()[-1]
