"""What recording usage costs per model call, next to the call itself.

    python -m bench.usage_overhead            # the figures the README quotes
    python -m bench.usage_overhead --quick    # a few thousand calls, for the tests

Four figures, each the median of several runs of many calls in one process:

* `record_usage` of a call priced from the genai-prices database (the common case: an `openai:`
  agent's answer), from a --prices file, and of a model nobody prices;
* a CLI command's share: naming the usage file in its environment and looking for the file
  after it exits (absent: the usual case for a command that reports nothing), and reading one
  reported line (present);
* once per process: importing the price database (genai-prices and pydantic), paid by the
  first call that needs a price, in a fresh interpreter.

The bar is "negligible next to a model call": the fastest model answers take a few hundred
milliseconds, so anything under a millisecond is below 0.5 % of the cheapest call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentos.item.context import AttemptSetup, ItemContext
from agentos.item.workflow import Item
from agentos.usage.meter import Spending
from agentos.usage.prices import PriceBook, UserPrice

#: the cheapest model call there is, for the ratio: a few tokens from a small hosted model
CHEAPEST_CALL_SECONDS = 0.3


def _per_call_us(action: Callable[[int], object], calls: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for n in range(calls):
            action(n)
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


def _context(run_dir: Path, prices: PriceBook) -> ItemContext:
    return ItemContext(
        Item("bench"), 1, run_dir, None, setup=AttemptSetup(spending=Spending(prices))
    )


def measure(calls: int = 20_000, runs: int = 5) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        book = PriceBook({"local-model": UserPrice(0.1, 0.2)})
        book.preload()
        database = _context(run_dir, book)
        user = _context(run_dir, book)
        unknown = _context(run_dir, book)

        def priced(n: int) -> object:
            return database.record_usage(
                "gpt-4o-mini", input_tokens=1000 + n % 7, output_tokens=200, cached_tokens=0
            )

        figures = {
            "record_usage_database_us": _per_call_us(priced, calls, runs),
            "record_usage_price_file_us": _per_call_us(
                lambda n: user.record_usage("local-model", input_tokens=1000, output_tokens=200),
                calls,
                runs,
            ),
            "record_usage_unpriced_us": _per_call_us(
                lambda n: unknown.record_usage("no-such-model", input_tokens=9, output_tokens=9),
                calls,
                runs,
            ),
        }
        # a command's share: its file named in its environment, then the look for the file
        absent = _context(run_dir, book)

        def command_absent(n: int) -> object:
            environment = {"AGENTOS_USAGE_FILE": absent.usage_file}
            absent.collect_usage_file()
            return environment

        figures["command_no_report_us"] = _per_call_us(command_absent, calls // 4, runs)
        present = _context(run_dir, book)
        line = b'{"model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 200}\n'

        def command_one_line(n: int) -> object:
            with open(present.usage_file, "ab") as f:
                f.write(line)
            present.collect_usage_file()
            return None

        figures["command_one_reported_call_us"] = _per_call_us(command_one_line, calls // 4, runs)
    figures["first_price_in_a_process_ms"] = _cold_start_ms(runs)
    worst = max(v for k, v in figures.items() if k.endswith("_us"))
    figures["worst_per_call_us"] = worst
    figures["share_of_cheapest_call"] = worst / 1e6 / CHEAPEST_CALL_SECONDS
    return figures


def _cold_start_ms(runs: int) -> float:
    """Importing genai-prices and its data in a fresh interpreter, beyond the interpreter's
    own start: what the first priced call of a process pays once."""
    code = (
        "import time; t0 = time.perf_counter();"
        "from agentos.usage.prices import PriceBook; PriceBook().preload();"
        "print(time.perf_counter() - t0)"
    )
    baseline = (
        "import time; t0 = time.perf_counter();"
        "from agentos.usage.prices import PriceBook;"
        "print(time.perf_counter() - t0)"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    def once(source: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", source], capture_output=True, text=True, check=True, env=env
        )
        return float(out.stdout.strip())

    loaded = statistics.median(once(code) for _ in range(runs))
    bare = statistics.median(once(baseline) for _ in range(runs))
    return (loaded - bare) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few thousand calls")
    args = parser.parse_args()
    figures = measure(calls=2_000, runs=3) if args.quick else measure()
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
