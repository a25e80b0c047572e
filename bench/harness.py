"""Timing machinery shared by the scenarios: interleaved runs, statistics, peers, the machine.

Comparisons are made within one run of the harness, A/B interleaved (A B C, then B C A, ...),
because the machine is shared and noisy: a slow minute hurts every contender alike. Every
contender gets a warm-up run that is not counted.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Series:
    """Repeated measurements of one contender, in seconds (or MB for memory)."""

    name: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def summary(self) -> dict[str, float | list[float]]:
        if not self.values:
            return {"runs": []}
        return {
            "min": round(min(self.values), 4),
            "median": round(self.median, 4),
            "max": round(max(self.values), 4),
            "runs": [round(v, 4) for v in self.values],
        }


def interleaved(
    contenders: Mapping[str, Callable[[], float]], runs: int, warmup: int = 1
) -> dict[str, Series]:
    """Run every contender `warmup` times (discarded), then `runs` rounds in rotating order."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    series = {name: Series(name) for name in names}
    for round_no in range(runs):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            series[name].values.append(contenders[name]())
    return series


def timed(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    stdout: int | None = subprocess.DEVNULL,
    check: bool = True,
) -> float:
    """Wall time of a command, from spawn to exit."""
    t0 = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, env=env, input=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - t0
    if check and done.returncode != 0:
        raise RuntimeError(f"{argv[:4]}... exited {done.returncode}: {done.stderr[-500:]}")
    return elapsed


def bench_env(**extra: str) -> dict[str, str]:
    """The environment agentos runs in during the benchmark: no colours, no inherited keys,
    bytecode caching allowed (a user's install has compiled modules)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENTOS_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def agentos(*args: str) -> list[str]:
    """The command a user types: the `agentos` console script of this Python's environment
    (`python -m agentos` first loads runpy and importlib.util, a few ms of a small run), or
    `python -m agentos` where there is no such script."""
    script = Path(PYTHON).parent / "agentos"
    if script.exists():
        return [str(script), *args]
    return [PYTHON, "-m", "agentos", *args]


def gnu_parallel() -> str | None:
    """The path of GNU parallel, or None (the scenarios then skip it with a note)."""
    path = shutil.which("parallel")
    if path is None:
        return None
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if "GNU parallel" in version.stdout else None


PARALLEL_MISSING = (
    "GNU parallel is not installed; install it with `apt-get install -y parallel` "
    "(Debian/Ubuntu) or `brew install parallel` to include it"
)


def peer_versions() -> dict[str, str]:
    versions: dict[str, str] = {"python": platform.python_version()}
    path = gnu_parallel()
    if path:
        out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        versions["gnu_parallel"] = out.splitlines()[0] if out else "?"
    xargs = subprocess.run(["xargs", "--version"], capture_output=True, text=True)
    versions["xargs"] = (xargs.stdout.splitlines() or ["?"])[0]
    try:
        import loky

        versions["loky"] = loky.__version__
    except ImportError:  # pragma: no cover
        pass
    return versions


def machine() -> dict[str, str | int]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count() or 0,
        "cpu_model": model or platform.processor(),
        "system": f"{platform.system()} {platform.release()}",
        "hostname_hash": str(abs(hash(platform.node())) % 10_000),
    }


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            # the results this run rewrites do not make the code dirty
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)bench/results",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
