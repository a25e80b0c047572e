"""Run the benchmarks: `make bench`, or `python -m bench [--smoke] [--only NAME,...]`.

Writes bench/results/<date>.json and bench/results/<date>.md (the table the README quotes), or,
with --smoke (tiny sizes, one run, for CI), a results directory given by --out.

Two groups: the executor's scenarios (bench/scenarios.py) and the rate-limit scenarios against
the provider simulator (bench/rate_scenarios.py; `--only rates`, or one of them by its id, such
as `--only rates.one_key`). A run of rate scenarios alone writes <date>-rates.json/.md, so it
does not replace the full report. `--agentos-src DIR` runs the rate scenarios' agentos from
another source tree (e.g. `git archive HEAD agentos | tar -x -C DIR`), for before/after rows.
`--baseline-src DIR` adds agentos from another source tree as a third contender to the rows that
compare agentos with GNU parallel and raw loky, interleaved with the others in the same run: old
code against new, measured in the same minutes (the report gives both ratios and new / old).
"""

from __future__ import annotations

import argparse
import compileall
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import governor_roundtrip, rate_scenarios, scenarios
from bench.harness import REPO, commit, gnu_parallel, machine, peer_versions

ALL = (
    "short_commands",
    "sleep_batch",
    "output_heavy",
    "line_writer",
    "block_writer",
    "fixed_cost",
    "python_items",
    "memory",
    "scale",
    "scaling",
    "governor_roundtrip",
)


def run(
    names: list[str],
    sizes: scenarios.Sizes,
    out: Path,
    stamp: str,
    baseline: Path | None = None,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with scenarios.workdir() as tmp:
        work = Path(tmp)
        for name in names:
            t0 = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            if name == "scaling":
                result = scenarios.scaling(sizes, work, out / f"{stamp}-scaling.png")
            elif name == "governor_roundtrip":
                result = governor_roundtrip.measure(
                    calls=20 if sizes is scenarios.SMOKE else 200, runs=sizes.runs
                )
            elif baseline is not None and name in scenarios.BASELINE_ROWS:
                result = getattr(scenarios, name)(sizes, work, baseline=baseline)
            else:
                result = getattr(scenarios, name)(sizes, work)
            result["bench_seconds"] = round(time.monotonic() - t0, 1)
            results[name] = result
            print(
                f"[bench] {name}: {result.get('measured')} -> {verdict(result.get('passed'))}",
                file=sys.stderr,
                flush=True,
            )
    return results


def verdict(passed: bool | None) -> str:
    return {True: "meets target", False: "MISSES target", None: "n/a"}[passed]


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Benchmarks of {report['date']} on {report['machine']['cpus']} CPUs "
        f"({report['machine']['cpu_model']}), commit {report['commit']}; "
        f"{report['runs']} runs after {report['warmup']} warm-up, medians, contenders "
        "interleaved.",
        "",
        "| scenario | target | measured | verdict |",
        "|---|---|---|---|",
    ]
    if not report["results"]:  # rate scenarios alone: one run each, nothing interleaved
        lines = [
            f"Benchmarks of {report['date']} on {report['machine']['cpus']} CPUs "
            f"({report['machine']['cpu_model']}), commit {report['commit']}."
        ]
    for result in report["results"].values():
        measured = result.get("measured")
        if isinstance(measured, dict):
            measured = ", ".join(f"{k} {v}" for k, v in measured.items())
        lines.append(
            f"| {result['title']} | {result['target']} | {measured} | "
            f"{verdict(result.get('passed'))} |"
        )
    scaling = report["results"].get("scaling")
    if scaling:
        lines += [
            "",
            "Makespan (s) by --parallel:",
            "",
            "| workers | ideal | no keys | 2 keys |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['workers']} | {r['ideal']} | {r['no keys']} | {r['2 keys']} |"
            for r in scaling["table"]
        ]
    compared = [r for r in report["results"].values() if r.get("baseline")]
    if compared:
        lines += ["", f"Baseline: agentos from {report.get('baseline_src')}, in the same runs:", ""]
        lines += ["| scenario | baseline | this code | this code / baseline (time) |"]
        lines += ["|---|---|---|---|"]
        for result in compared:
            entry = result["baseline"]
            lines.append(
                f"| {result['title']} | {entry.get('measured')} | {result.get('measured')} | "
                f"{entry.get('agentos_over_baseline', '—')} |"
            )
    notes = sorted({n for r in report["results"].values() for n in r.get("notes", [])})
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    if report.get("rates"):
        lines += ["", rate_scenarios.markdown(report["rates"]).rstrip("\n")]
        if report.get("agentos_src"):
            lines += ["", f"The rate scenarios ran agentos from {report['agentos_src']}."]
        if report.get("rates_parallel"):
            lines += ["", f"The rate scenarios ran agentos with -j {report['rates_parallel']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run (for CI)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios: "
        + ", ".join((*ALL, rate_scenarios.GROUP, *rate_scenarios.NAMES)),
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--agentos-src",
        type=Path,
        help="run the rate scenarios' agentos from this source tree (put first on PYTHONPATH)",
    )
    parser.add_argument(
        "--rates-parallel",
        type=int,
        metavar="N",
        help="run the rate scenarios' agentos with -j N instead of each scenario's own",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run agentos from this source tree in the executor rows, interleaved",
    )
    args = parser.parse_args(argv)
    baseline = args.baseline_src.resolve() if args.baseline_src else None
    if baseline is not None and not (baseline / "agentos" / "__main__.py").is_file():
        parser.error(
            f"--baseline-src {args.baseline_src}: no agentos/__main__.py there; make one with "
            "git archive REV agentos | tar -x -C DIR"
        )
    names = [n for n in args.only.split(",") if n] or [*ALL, rate_scenarios.GROUP]
    names = [m for n in names for m in (rate_scenarios.NAMES if n == rate_scenarios.GROUP else [n])]
    unknown = [n for n in names if n not in ALL and n not in rate_scenarios.NAMES]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    rate_names = [n for n in names if n in rate_scenarios.NAMES]
    sizes = scenarios.SMOKE if args.smoke else scenarios.FULL
    if gnu_parallel() is None:
        print(
            "[bench] note: GNU parallel not found; comparisons with it are skipped. Install: "
            "apt-get install -y parallel",
            file=sys.stderr,
        )
    # Byte-compile the sources first. With PYTHONDONTWRITEBYTECODE set (common, and set here) an
    # edited module has a stale .pyc and is compiled again by every agentos process: ~3 ms a
    # module, 50 ms and more of a run's start-up after a day's edits, measured as agentos's cost.
    compileall.compile_dir(str(REPO / "agentos"), quiet=1)
    if baseline is not None:
        compileall.compile_dir(str(baseline / "agentos"), quiet=1)
    if args.agentos_src is not None:  # else every agentos process compiles it afresh
        compileall.compile_dir(str(args.agentos_src.resolve() / "agentos"), quiet=1)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    results = run([n for n in names if n in ALL], sizes, args.out, stamp, baseline)
    rates: dict[str, Any] = {}
    if rate_names:
        with scenarios.workdir() as tmp:
            rates = rate_scenarios.run_group(
                rate_names,
                Path(tmp),
                smoke=args.smoke,
                agentos_src=args.agentos_src.resolve() if args.agentos_src else None,
                parallel=args.rates_parallel,
            )
    report = {
        "date": stamp,
        "commit": commit(),
        "machine": machine(),
        "peers": peer_versions(),
        "smoke": args.smoke,
        "runs": sizes.runs,
        "warmup": sizes.warmup,
        "results": results,
        "rates": rates,
        "agentos_src": str(args.agentos_src) if args.agentos_src else None,
        "rates_parallel": args.rates_parallel,
        "baseline_src": str(baseline) if baseline else None,
    }
    name = f"{stamp}-smoke" if args.smoke else stamp
    if not results:
        name += "-rates"  # rate scenarios alone do not replace the day's full report
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / f"{name}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
