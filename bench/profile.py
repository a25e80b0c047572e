"""Where a small run's time goes: `make profile` (`python -m bench.profile`).

    python -m bench.profile [--out bench/results] [--runs 10]

Two cases, the benchmark rows that start-up decides:

* `fixed-cost`: `agentos run -j4` of 4 items of `true`;
* `line-writer`: 4 Python items printing 100 000 lines each with PYTHONUNBUFFERED=1.

Each case runs `--runs` times under py-spy (`--idle`: waiting is time the user waits too; 1000
samples a second, started with the process, so imports are seen, which `--subprocesses` on a
loop of runs misses). The parent's main thread's samples are sorted into phases (below) and
averaged per run. Samples py-spy could not read at all (its "Errors": the interpreter is not
up yet) are the interpreter's start; samples with no Python frame are its start after that and
its exit (tearing down modules). GNU parallel's whole run of the same case is timed beside it.
Writes:

* `<date>-profile.png`: one stacked bar per case, milliseconds per phase, GNU parallel's total
  as a line;
* `<date>-profile-<case>.svg`: py-spy's flame graph of one run (open it in a browser; click a frame
  to zoom), parent and workers;
* `<date>-profile.md`: the numbers.

Needs py-spy (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from bench.harness import PYTHON, REPO, agentos, bench_env, gnu_parallel

EMITTER = REPO / "bench" / "emitter.py"
RATE = 1000  # samples per second

# (phase, test on a main-thread stack, root frame first); the first that matches takes the sample
PHASES: list[tuple[str, Callable[[str], bool]]] = [
    ("worker pool: import loky, fork, shut down", lambda s: "WorkerPool." in s),
    ("loading modules", lambda s: "_find_and_load" in s),
    ("waiting for the items to run", lambda s: "_wait_for_events" in s or "wait_closed" in s),
    (
        "run directory, journal, state, summary",
        lambda s: any(
            k in s
            for k in ("atomic_write", "Journal.", "StateWriter.", "RunDir.", "summary", "manifest")
        ),
    ),
    ("click: parse the command line", lambda s: "click/core.py" in s and "run_workflow" not in s),
    ("interpreter start and exit (no Python frame)", lambda s: s == ""),
    ("exit: thread joins, atexit", lambda s: not s.startswith("<module>")),
    ("other agentos code", lambda s: True),
]
START = "interpreter start (before py-spy can read it)"
# the order a run goes through them, for the chart and the table
DISPLAY = [
    START,
    "loading modules",
    "click: parse the command line",
    "run directory, journal, state, summary",
    "worker pool: import loky, fork, shut down",
    "waiting for the items to run",
    "other agentos code",
    "exit: thread joins, atexit",
    "interpreter start and exit (no Python frame)",
]


def cases(work: Path) -> dict[str, tuple[list[str], list[str], dict[str, str]]]:
    """name -> (agentos argv, GNU parallel argv, environment)"""
    four = work / "four.txt"
    four.write_text("1\n2\n3\n4\n")
    parallel = gnu_parallel() or "parallel"
    tag = [parallel, "--will-cite", "-j4", "--tag", "--line-buffer"]
    emit = [PYTHON, str(EMITTER), "100000"]
    return {
        "fixed-cost": (
            agentos("run", "-q", "-j4", "--items", str(four), "--", "true"),
            [*tag, "true", "::::", str(four)],
            bench_env(),
        ),
        "line-writer": (
            agentos("run", "-q", "-j4", "--items", str(four), "--", *emit),
            [*tag, *emit, "::::", str(four)],
            bench_env(PYTHONUNBUFFERED="1"),
        ),
    }


def py_spy() -> str | None:
    beside = Path(PYTHON).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(spy: str, argv: list[str], env: dict[str, str], fmt: str, out: Path, cwd: Path) -> int:
    """Record one run; the number of samples py-spy could not read."""
    done = subprocess.run(
        [spy, "record", "--idle", "--nonblocking", "--rate", str(RATE), "--format", fmt]
        + (["--subprocesses"] if fmt == "flamegraph" else [])
        + ["--output", str(out), "--", *argv],
        env=env,
        cwd=cwd,  # the runs' .agentos/ directories go there
        check=True,
        stdout=subprocess.PIPE,  # py-spy reports on stdout, among the run's own output
        stderr=subprocess.DEVNULL,
    )
    found = re.search(rb"py-spy> Wrote .* Errors: (\d+)", done.stdout)
    return int(found.group(1)) if found else 0


def main_thread_phases(raw: Path) -> Counter[str]:
    """Samples of the parent's main thread per phase, from py-spy's raw (folded) output."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or stack.startswith("Thread._bootstrap"):
            continue  # other threads: the listener, loky's; they run beside the main thread
        stack = stack.strip()
        phase = next(name for name, test in PHASES if test(stack))
        counts[phase] += int(n)
    return counts


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def profile_case(
    spy: str, name: str, case: tuple[list[str], list[str], dict[str, str]], runs: int, work: Path
) -> dict[str, float]:
    command, parallel, env = case
    totals: Counter[str] = Counter()
    peers = []
    for n in range(runs):
        raw = work / f"{name}-{n}.txt"
        totals[START] += record(spy, command, env, "raw", raw, work)
        totals.update(main_thread_phases(raw))
        peers.append(timed(parallel, env, work))
    ms = {phase: 1000 * totals[phase] / RATE / runs for phase in [START, *(p for p, _ in PHASES)]}
    ms["GNU parallel, whole run"] = 1000 * statistics.median(peers)
    return ms


def chart(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = DISPLAY
    fig, ax = plt.subplots(figsize=(10, 3.6))
    names = list(results)
    colours = [plt.get_cmap("tab10")(i) for i in range(10)]
    for row, name in enumerate(names):
        left = 0.0
        for i, phase in enumerate(order):
            width = results[name][phase]
            ax.barh(row, width, left=left, color=colours[i % 10], label=phase if row == 0 else None)
            left += width
        peer = results[name]["GNU parallel, whole run"]
        ax.plot(
            [peer, peer],
            [row - 0.45, row + 0.45],
            color="black",
            linewidth=2,
            label="GNU parallel --tag --lb, whole run" if row == 0 else None,
        )
    ax.set_yticks(range(len(names)), [f"agentos run -j4: {n}" for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds per run (parent's main thread; py-spy, idle included)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results: dict[str, dict[str, float]], runs: int) -> str:
    names = list(results)
    lines = [
        f"Profile of {runs} runs per case (py-spy {RATE}/s, parent's main thread, idle included),"
        " milliseconds per run:",
        "",
        "| phase | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    phases = DISPLAY
    for phase in [*phases, "GNU parallel, whole run"]:
        cells = " | ".join(f"{results[n][phase]:.0f}" for n in names)
        lines.append(f"| {phase} | {cells} |")
    total = " | ".join(f"{sum(results[n][p] for p in phases):.0f}" for n in names)
    lines.append(f"| **agentos, sum of the phases** | {total} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    spy = py_spy()
    if spy is None:
        print("bench.profile: py-spy is missing: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="agentos-profile-") as tmp:
        work = Path(tmp)
        for name, case in cases(work).items():
            svg = args.out / f"{stamp}-profile-{name}.svg"
            record(spy, case[0], case[2], "flamegraph", svg, work)
            results[name] = profile_case(spy, name, case, args.runs, work)
    chart(results, args.out / f"{stamp}-profile.png")
    report = table(results, args.runs)
    (args.out / f"{stamp}-profile.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
