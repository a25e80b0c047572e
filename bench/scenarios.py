"""The benchmark scenarios of issue 5. Each returns a result record:

    {"title", "target", "measured", "pass" (True/False/None when a peer is missing),
     "series": {contender: {min, median, max, runs}}, "notes": [...]}

Targets are median ratios measured in the same run; they are never tuned to the code.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.harness import (
    PARALLEL_MISSING,
    PYTHON,
    REPO,
    Series,
    agentos,
    bench_env,
    gnu_parallel,
    interleaved,
    timed,
)


@dataclass(frozen=True)
class Sizes:
    runs: int
    warmup: int
    short_items: int
    sleep_items: int
    sleep_seconds: float
    output_lines: int
    python_items: int
    memory_items: tuple[int, int]
    scale_items: int
    scaling_workers: tuple[int, ...]
    fixed_runs: int


FULL = Sizes(
    runs=5,
    warmup=1,
    short_items=200,
    sleep_items=40,
    sleep_seconds=0.25,
    output_lines=100_000,
    python_items=2000,
    memory_items=(1000, 10_000),
    scale_items=10_000,
    scaling_workers=tuple(range(1, 11)),
    fixed_runs=15,
)
SMOKE = Sizes(
    runs=1,
    warmup=0,
    short_items=12,
    sleep_items=8,
    sleep_seconds=0.05,
    output_lines=2000,
    python_items=60,
    memory_items=(30, 120),
    scale_items=150,
    scaling_workers=(1, 2, 3),
    fixed_runs=1,
)

SHORT_COMMAND = (
    "sleep 0.02; for i in " + " ".join(map(str, range(1, 21))) + "; do echo line $i; done"
)


def _series(series: dict[str, Series]) -> dict[str, Any]:
    return {name: s.summary() for name, s in series.items()}


def _items_file(work: Path, name: str, lines: list[str]) -> Path:
    path = work / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


# ---- a baseline: another agentos source tree as a third contender (old code against new,
#      interleaved in one run, so a change is measured against the same minutes of the machine)

BASELINE = "agentos (baseline)"
#: the scenarios that take `baseline=`
BASELINE_ROWS = frozenset(
    ("short_commands", "output_heavy", "line_writer", "block_writer", "fixed_cost", "python_items")
)


def baseline_env(env: dict[str, str], src: Path) -> dict[str, str]:
    """`env` in which the `agentos` console script imports agentos from `src`."""
    paths = [str(src), env.get("PYTHONPATH", "")]
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _baseline_entry(result: dict[str, Any], series: dict[str, Series], src: Path | None) -> None:
    """The baseline's own ratio to GNU parallel, and agentos's time over the baseline's."""
    if src is None or BASELINE not in series:
        return
    entry: dict[str, Any] = {
        "src": str(src),
        "agentos_over_baseline": round(series["agentos"].median / series[BASELINE].median, 3),
    }
    if "parallel --tag --lb" in series:
        entry["measured"] = round(series[BASELINE].median / series["parallel --tag --lb"].median, 3)
    result["baseline"] = entry


class RunDirs:
    """A fresh --run-dir per agentos run, so runs never share a journal."""

    def __init__(self, work: Path) -> None:
        self.root = work / "runs"
        self.root.mkdir(parents=True, exist_ok=True)

    def next(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.root))


def agentos_run(run_dir: Path, items: Path, command: str, workers: int | str = 4) -> list[str]:
    """`agentos run -jN -q` of a shell command over an items file, into its own run dir."""
    return agentos(
        "run",
        f"-j{workers}",
        "-q",
        "--run-dir",
        str(run_dir),
        "--items",
        str(items),
        "--",
        "sh",
        "-c",
        command,
    )


def _journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


# ---- 1. short commands


def short_commands(sizes: Sizes, work: Path, baseline: Path | None = None) -> dict[str, Any]:
    items = _items_file(work, "short.txt", [str(n) for n in range(1, sizes.short_items + 1)])
    runs = RunDirs(work)
    env = bench_env()
    contenders = {
        "agentos": lambda: timed(
            agentos_run(runs.next(), items, SHORT_COMMAND, 4),
            env=env,
        ),
        "xargs -P4": lambda: timed(
            ["xargs", "-P4", "-n1", "sh", "-c", SHORT_COMMAND], stdin=items.read_text(), env=env
        ),
    }
    parallel = gnu_parallel()
    notes = []
    if parallel:
        contenders["parallel --tag --lb"] = lambda: timed(
            [
                parallel,
                "--will-cite",
                "-j4",
                "--tag",
                "--line-buffer",
                "sh",
                "-c",
                shlex.quote(SHORT_COMMAND),
                "::::",
                str(items),
            ],
            env=env,
        )
    else:
        notes.append(PARALLEL_MISSING)
    if baseline is not None:
        old_env = baseline_env(env, baseline)
        contenders[BASELINE] = lambda: timed(
            agentos_run(runs.next(), items, SHORT_COMMAND, 4), env=old_env
        )
    series = interleaved(contenders, sizes.runs, sizes.warmup)
    ideal = sizes.short_items * 0.02 / 4
    result: dict[str, Any] = {
        "title": f"{sizes.short_items} short commands (sleep 0.02 + 20 lines), 4 workers",
        "target": "agentos / parallel --tag --lb <= 0.85",
        "series": _series(series),
        "ideal_seconds": ideal,
        "agentos_over_xargs": round(series["agentos"].median / series["xargs -P4"].median, 3),
        "notes": notes,
    }
    if parallel:
        ratio = series["agentos"].median / series["parallel --tag --lb"].median
        result.update(measured=round(ratio, 3), passed=ratio <= 0.85)
    else:
        result.update(measured=None, passed=None)
    _baseline_entry(result, series, baseline)
    return result


# ---- 2. sleep batch: makespan and time to first item


def _agentos_sleep_batch(
    items: Path, run_dir: Path, workers: int, seconds: float, env: dict[str, str]
) -> dict[str, float]:
    t0 = time.time()
    wall = timed(
        agentos_run(run_dir, items, f"sleep {seconds}", workers),
        env=env,
    )
    records = _journal(run_dir)
    first = min(r["started"] for r in records)
    last = max(r["started"] + r["runtime"] for r in records)
    return {"wall": wall, "makespan": last - first, "first_item": first - t0}


def _parallel_sleep_batch(
    parallel: str, items: Path, joblog: Path, seconds: float, env: dict[str, str]
) -> dict[str, float]:
    joblog.unlink(missing_ok=True)
    t0 = time.time()
    wall = timed(
        [
            parallel,
            "--will-cite",
            "-j4",
            "--joblog",
            str(joblog),
            "sh",
            "-c",
            shlex.quote(f"sleep {seconds}"),
            "::::",
            str(items),
        ],
        env=env,
    )
    rows = [line.split("\t") for line in joblog.read_text().splitlines()[1:]]
    starts = [float(r[2]) for r in rows]
    ends = [float(r[2]) + float(r[3]) for r in rows]
    return {"wall": wall, "makespan": max(ends) - min(starts), "first_item": min(starts) - t0}


def sleep_batch(sizes: Sizes, work: Path) -> dict[str, Any]:
    items = _items_file(work, "sleep.txt", [str(n) for n in range(1, sizes.sleep_items + 1)])
    runs = RunDirs(work)
    env = bench_env()
    ideal = sizes.sleep_items * sizes.sleep_seconds / 4
    detail: dict[str, dict[str, Series]] = {}

    def measure(name: str, fn: Any) -> Any:
        def run() -> float:
            values = fn()
            for key, value in values.items():
                detail.setdefault(name, {}).setdefault(key, Series(f"{name} {key}")).values.append(
                    value
                )
            return float(values["makespan"])

        return run

    contenders = {
        "agentos": measure(
            "agentos", lambda: _agentos_sleep_batch(items, runs.next(), 4, sizes.sleep_seconds, env)
        )
    }
    parallel = gnu_parallel()
    notes = []
    if parallel:
        contenders["parallel"] = measure(
            "parallel",
            lambda: _parallel_sleep_batch(
                parallel, items, work / "joblog.tsv", sizes.sleep_seconds, env
            ),
        )
    else:
        notes.append(PARALLEL_MISSING)
    interleaved(contenders, sizes.runs, warmup=0)
    makespan = detail["agentos"]["makespan"].median
    first = detail["agentos"]["first_item"].median
    return {
        "title": f"sleep batch: {sizes.sleep_items} x {sizes.sleep_seconds} s, 4 workers "
        f"(ideal {ideal:.2f} s)",
        "target": "first item start -> last item end <= 1.03 x ideal; process start -> first "
        "item running <= 0.5 s",
        "measured": {
            "makespan_over_ideal": round(makespan / ideal, 3),
            "first_item_seconds": round(first, 3),
        },
        "passed": makespan / ideal <= 1.03 and first <= 0.5,
        "series": {
            f"{name} {key}": s.summary() for name, d in detail.items() for key, s in d.items()
        },
        "notes": notes,
    }


# ---- 3. output-heavy


def _check_lines(text: str, items: int, lines: int, pattern: str) -> str | None:
    """None if every item's lines 1..N arrived whole and in order, else what went wrong."""
    seen: dict[str, list[int]] = {}
    matcher = re.compile(pattern)
    for line in text.splitlines():
        match = matcher.fullmatch(line)
        if not match:
            return f"malformed or mixed line: {line[:80]!r}"
        seen.setdefault(match.group(1), []).append(int(match.group(2)))
    if len(seen) != items:
        return f"{len(seen)} items seen, {items} expected"
    for item, numbers in seen.items():
        if numbers != list(range(1, lines + 1)):
            return f"{item}: {len(numbers)} lines, expected {lines} in order"
    return None


def _output_contest(
    sizes: Sizes, work: Path, command: str, env: dict[str, str], baseline: Path | None = None
) -> tuple[dict[str, Series], list[str], list[str]]:
    """agentos and `parallel --tag --lb` running `command` on 4 items, stdout to a file; every
    run's file is checked line by line (whole, attributed, in order)."""
    items = _items_file(work, "out.txt", ["1", "2", "3", "4"])
    runs = RunDirs(work)
    out_file = work / "output.txt"
    problems: list[str] = []

    def agentos_contender(name: str, run_env: dict[str, str]) -> Callable[[], float]:
        def run_agentos() -> float:
            with open(out_file, "w") as out:
                t = timed(
                    agentos_run(runs.next(), items, command, 4),
                    env=run_env,
                    stdout=out.fileno(),
                )
            text = out_file.read_text()
            problem = _check_lines(text, 4, sizes.output_lines, r"\[(item-\d)\] (\d+)")
            if problem:
                problems.append(f"{name}: {problem}")
            return t

        return run_agentos

    contenders = {"agentos": agentos_contender("agentos", env)}
    if baseline is not None:
        contenders[BASELINE] = agentos_contender(BASELINE, baseline_env(env, baseline))
    parallel = gnu_parallel()
    notes = []
    if parallel:

        def run_parallel() -> float:
            with open(out_file, "w") as out:
                t = timed(
                    [
                        parallel,
                        "--will-cite",
                        "-j4",
                        "--tag",
                        "--line-buffer",
                        "sh",
                        "-c",
                        shlex.quote(command),
                        "::::",
                        str(items),
                    ],
                    env=env,
                    stdout=out.fileno(),
                )
            problem = _check_lines(out_file.read_text(), 4, sizes.output_lines, r"(\d)\t(\d+)")
            if problem:
                problems.append(f"parallel: {problem}")
            return t

        contenders["parallel --tag --lb"] = run_parallel
    else:
        notes.append(PARALLEL_MISSING)
    return interleaved(contenders, sizes.runs, sizes.warmup), problems, notes


def _ratio_result(
    result: dict[str, Any],
    series: dict[str, Series],
    problems: list[str],
    target: float,
    baseline: Path | None = None,
) -> dict[str, Any]:
    result["line_check"] = problems or "every line whole, attributed and in order"
    _baseline_entry(result, series, baseline)
    # the baseline's own lines are reported, but judge only the code under test
    problems = [p for p in problems if not p.startswith(BASELINE)]
    if "parallel --tag --lb" in series:
        ratio = series["agentos"].median / series["parallel --tag --lb"].median
        result.update(measured=round(ratio, 3), passed=ratio <= target and not problems)
    else:
        result.update(measured=None, passed=None if not problems else False)
    return result


def output_heavy(sizes: Sizes, work: Path, baseline: Path | None = None) -> dict[str, Any]:
    series, problems, notes = _output_contest(
        sizes, work, f"seq {sizes.output_lines}", bench_env(), baseline
    )
    result = {
        "title": f"output-heavy: 4 items x {sizes.output_lines} lines, 4 workers",
        "target": "agentos / parallel --tag --lb <= 1.0, no line lost or mixed",
        "series": _series(series),
        "notes": notes,
    }
    return _ratio_result(result, series, problems, 1.0, baseline)


EMITTER = REPO / "bench" / "emitter.py"


def line_writer(sizes: Sizes, work: Path, baseline: Path | None = None) -> dict[str, Any]:
    """The realistic output case: a Python program with PYTHONUNBUFFERED=1, one `write` per
    line, so the output path is woken per line unless it batches."""
    command = f"{shlex.quote(PYTHON)} {shlex.quote(str(EMITTER))} {sizes.output_lines}"
    series, problems, notes = _output_contest(
        sizes, work, command, bench_env(PYTHONUNBUFFERED="1"), baseline
    )
    result = {
        "title": f"line-by-line writer: 4 Python items x {sizes.output_lines} lines, "
        "PYTHONUNBUFFERED=1, 4 workers",
        "target": "agentos / parallel --tag --lb <= 1.0, no line lost or mixed",
        "series": _series(series),
        "notes": notes,
    }
    return _ratio_result(result, series, problems, 1.0, baseline)


def block_writer(sizes: Sizes, work: Path, baseline: Path | None = None) -> dict[str, Any]:
    """The same Python program with its output block-buffered (the default into a pipe)."""
    command = f"{shlex.quote(PYTHON)} {shlex.quote(str(EMITTER))} {sizes.output_lines}"
    env = bench_env()
    env.pop("PYTHONUNBUFFERED", None)
    series, problems, notes = _output_contest(sizes, work, command, env, baseline)
    result = {
        "title": f"block-buffered writer: 4 Python items x {sizes.output_lines} lines, 4 workers",
        "target": "agentos / parallel --tag --lb <= 1.0, no line lost or mixed",
        "series": _series(series),
        "notes": notes,
    }
    return _ratio_result(result, series, problems, 1.0, baseline)


# ---- 3b. fixed cost of a small run


def fixed_cost(sizes: Sizes, work: Path, baseline: Path | None = None) -> dict[str, Any]:
    """Start-up to exit of a run of 4 trivial items: what every small run pays."""
    items = _items_file(work, "true.txt", ["1", "2", "3", "4"])
    runs = RunDirs(work)
    env = bench_env()

    def run(run_env: dict[str, str]) -> float:
        argv = ["run", "-j4", "-q", "--run-dir", str(runs.next()), "--items", str(items)]
        return timed(agentos(*argv, "--", "true"), env=run_env)

    contenders = {"agentos": lambda: run(env)}
    if baseline is not None:
        old_env = baseline_env(env, baseline)
        contenders[BASELINE] = lambda: run(old_env)
    parallel = gnu_parallel()
    notes = []
    if parallel:
        contenders["parallel --tag --lb"] = lambda: timed(
            [parallel, "--will-cite", "-j4", "--tag", "--line-buffer", "true", "::::", str(items)],
            env=env,
        )
    else:
        notes.append(PARALLEL_MISSING)
    series = interleaved(contenders, sizes.fixed_runs, sizes.warmup)
    result: dict[str, Any] = {
        "title": "fixed cost: 4 items of `true`, 4 workers, start-up to exit",
        "target": "agentos / parallel --tag --lb <= 1.3",
        "series": _series(series),
        "notes": notes,
    }
    if parallel:
        ratio = series["agentos"].median / series["parallel --tag --lb"].median
        result.update(measured=round(ratio, 3), passed=ratio <= 1.3)
    else:
        result.update(measured=None, passed=None)
    _baseline_entry(result, series, baseline)
    return result


# ---- 4. Python items


def python_items(sizes: Sizes, work: Path, baseline: Path | None = None) -> dict[str, Any]:
    """Per-item cost from two batch sizes (the slope), so start-up cost cancels out."""
    runs = RunDirs(work)
    env = bench_env(PYTHONPATH=str(REPO))
    small, large = 10, sizes.python_items

    def agentos_noop(n: int, run_env: dict[str, str]) -> float:
        return timed(
            [
                PYTHON,
                "-m",
                "bench.noop_workflow",
                "--count",
                str(n),
                "-j2",
                "-q",
                "--run-dir",
                str(runs.next()),
            ],
            env=run_env,
            cwd=REPO,
        )

    def peer(kind: str, n: int) -> float:
        return timed([PYTHON, "-m", "bench.peers", kind, str(n), "2"], env=env, cwd=REPO)

    contenders = {
        f"agentos {large}": lambda: agentos_noop(large, env),
        f"agentos {small}": lambda: agentos_noop(small, env),
        f"loky {large}": lambda: peer("loky", large),
        f"loky {small}": lambda: peer("loky", small),
        f"futures {large}": lambda: peer("futures", large),
        f"futures {small}": lambda: peer("futures", small),
    }
    names = ["agentos", "loky", "futures"]
    if baseline is not None:
        old_env = baseline_env(env, baseline)
        contenders[f"{BASELINE} {large}"] = lambda: agentos_noop(large, old_env)
        contenders[f"{BASELINE} {small}"] = lambda: agentos_noop(small, old_env)
        names.append(BASELINE)
    series = interleaved(contenders, sizes.runs, sizes.warmup)

    def per_item_ms(name: str) -> float:
        return (
            1000
            * (series[f"{name} {large}"].median - series[f"{name} {small}"].median)
            / (large - small)
        )

    overhead = per_item_ms("agentos") - per_item_ms("loky")
    result: dict[str, Any] = {
        "title": f"Python items: {large} no-op execute_item calls, 2 workers",
        "target": "<= 0.5 ms per item over raw loky",
        "measured": round(overhead, 3),
        "passed": overhead <= 0.5,
        "per_item_ms": {name: round(per_item_ms(name), 3) for name in names},
        "series": _series(series),
        "notes": [
            "per-item cost = (median time of the large batch - the small batch) / "
            "(difference in items): start-up costs cancel out"
        ],
    }
    if baseline is not None:
        result["baseline"] = {
            "src": str(baseline),
            "measured": round(per_item_ms(BASELINE) - per_item_ms("loky"), 3),
        }
    return result


# ---- 5. memory


def _peak_rss(
    argv: list[str], env: dict[str, str], cwd: Path | None = None, children: bool = False
) -> dict[str, float]:
    """Peak RSS (MB) of the process, and of its children by role when asked, sampled every
    20 ms; USS of the workers too (what a forked worker really costs)."""
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    me = psutil.Process(proc.pid)
    peaks: dict[str, float] = {"parent": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peaks["parent"] = max(peaks["parent"], me.memory_info().rss / 2**20)
                if children:
                    cmdline = me.cmdline()
                    for child in me.children():
                        line = child.cmdline()
                        role = (
                            "worker"
                            if line == cmdline or "popen_loky" in " ".join(line)
                            else "key server"
                            if "spawn" in " ".join(line)
                            else None
                        )
                        if role is None:
                            continue
                        info = child.memory_full_info()
                        peaks[role] = max(peaks.get(role, 0.0), info.rss / 2**20)
                        peaks[f"{role} uss"] = max(peaks.get(f"{role} uss", 0.0), info.uss / 2**20)
            except psutil.Error:
                pass
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.wait()
    stop.set()
    sampler.join()
    return peaks


def memory(sizes: Sizes, work: Path) -> dict[str, Any]:
    runs = RunDirs(work)
    items = _items_file(work, "mem.txt", [str(n) for n in range(8)])
    env = bench_env(
        AGENTOS_CREDENTIALS="sk-bench-key-one-0001,sk-bench-key-two-0002,"
        "sk-bench-key-three-03,sk-bench-key-four-004"
    )
    roles = _peak_rss(
        agentos_run(runs.next(), items, "sleep 0.5", 4),
        env,
        children=True,
    )
    low, high = sizes.memory_items
    noop_env = bench_env(PYTHONPATH=str(REPO))
    growth = []
    for _ in range(max(1, min(sizes.runs, 3))):
        small = _peak_rss(
            [
                PYTHON,
                "-m",
                "bench.noop_workflow",
                "--count",
                str(low),
                "-j2",
                "-q",
                "--run-dir",
                str(runs.next()),
            ],
            noop_env,
            cwd=REPO,
        )["parent"]
        big = _peak_rss(
            [
                PYTHON,
                "-m",
                "bench.noop_workflow",
                "--count",
                str(high),
                "-j2",
                "-q",
                "--run-dir",
                str(runs.next()),
            ],
            noop_env,
            cwd=REPO,
        )["parent"]
        growth.append(big - small)
    worker = roles.get("worker", float("nan"))
    grew = sorted(growth)[len(growth) // 2]
    return {
        "title": "memory (peak RSS, MB) with 4 workers and 4 keys; parent growth with items",
        "target": f"<= 40 MB per worker; parent grows <= 20 MB from {low} to {high} items",
        "measured": {
            "worker_rss_mb": round(worker, 1),
            f"parent_growth_mb_{low}_to_{high}": round(grew, 1),
        },
        "passed": worker <= 40 and grew <= 20,
        "peaks_mb": {k: round(v, 1) for k, v in roles.items()},
        "notes": [
            "forked workers share the parent's pages: RSS counts them, USS (unique) is "
            "what each worker adds"
        ],
    }


# ---- 6. scale


def scale(sizes: Sizes, work: Path) -> dict[str, Any]:
    repo = work / "scale-repo"
    briefs = repo / "ideas" / "active"
    briefs.mkdir(parents=True, exist_ok=True)
    for n in range(sizes.scale_items):
        (briefs / f"idea-{n:05d}.md").write_text(f"# Idea {n}\n\n- It does thing {n}\n")
    env = bench_env()
    dry = interleaved(
        {
            "dry-run": lambda: timed(
                agentos("requirements", "--repo", str(repo), "--drafter", "mock", "--dry-run"),
                env=env,
            )
        },
        max(1, min(sizes.runs, 3)),
        sizes.warmup,
    )["dry-run"]
    items = _items_file(work, "scale.txt", [str(n) for n in range(sizes.scale_items)])
    run_dir = work / "scale-run"
    wall = timed(
        agentos(
            "run", "-j10", "-q", "--run-dir", str(run_dir), "--items", str(items), "--", "true"
        ),
        env=env,
    )
    rows = [r.split("\t") for r in (run_dir / "joblog.tsv").read_text().splitlines()]
    header_ok = rows[0][:3] == ["Seq", "Host", "Starttime"]
    seqs = sorted(int(r[0]) for r in rows[1:])
    joblog_ok = (
        header_ok
        and seqs == list(range(1, sizes.scale_items + 1))
        and all(r[6] == "0" for r in rows[1:])
    )
    return {
        "title": f"scale: --dry-run on {sizes.scale_items} briefs; run -j10 on "
        f"{sizes.scale_items} no-op items",
        "target": "dry-run <= 1.5 s; the run completes with a correct joblog",
        "measured": {
            "dry_run_seconds": round(dry.median, 3),
            "run_seconds": round(wall, 2),
            "joblog_correct": joblog_ok,
        },
        "passed": dry.median <= 1.5 and joblog_ok,
        "series": {"dry-run": dry.summary()},
        "notes": [],
    }


# ---- 7. scaling picture


def scaling(sizes: Sizes, work: Path, png: Path | None) -> dict[str, Any]:
    items = _items_file(work, "scaling.txt", [str(n) for n in range(sizes.sleep_items)])
    runs = RunDirs(work)
    table = []
    for workers in sizes.scaling_workers:
        row: dict[str, Any] = {"workers": workers}
        for label, env in (
            ("no keys", bench_env()),
            ("2 keys", bench_env(AGENTOS_CREDENTIALS="sk-scale-one-000001,sk-scale-two-000002")),
        ):
            values = _agentos_sleep_batch(items, runs.next(), workers, sizes.sleep_seconds, env)
            row[label] = round(values["makespan"], 3)
        row["ideal"] = round(-(-sizes.sleep_items // workers) * sizes.sleep_seconds, 3)
        table.append(row)
    notes = []
    if png is not None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            xs = [r["workers"] for r in table]
            plt.figure(figsize=(6, 4))
            for key, style in (("ideal", ":"), ("no keys", "-o"), ("2 keys", "-s")):
                plt.plot(xs, [r[key] for r in table], style, label=key)
            plt.xlabel("--parallel")
            plt.ylabel("makespan (s)")
            plt.title(f"{sizes.sleep_items} x {sizes.sleep_seconds} s sleep items")
            plt.legend()
            plt.grid(alpha=0.3)
            plt.savefig(png, dpi=100, bbox_inches="tight")
            plt.close()
            notes.append(f"plot: {png.name}")
        except ImportError:
            notes.append("matplotlib is not installed: no plot (pip install matplotlib)")
    return {
        "title": f"scaling: makespan of {sizes.sleep_items} x {sizes.sleep_seconds} s items by "
        "--parallel, without keys and with 2 keys (capped at 2)",
        "target": "a picture, no threshold",
        "measured": None,
        "passed": None,
        "table": table,
        "notes": notes,
    }


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="agentos-bench-")
