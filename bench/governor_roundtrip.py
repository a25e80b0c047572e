"""Is the governor a bottleneck? Ten item processes asking it for keys as fast as they can.

An HTTP agent asks the governor for a key before every call and reports the answer after it: two
round trips to the key server (a multiprocessing Manager process, as in a loky run) per call. The
issue's bar is 10 items × 50 calls/s = 500 calls/s. Here 10 forked processes, each with its own
proxy connection (as loky workers have), do acquire_call + end_call in a loop against a governor
whose limits are far away (so nothing waits but the round trips), and the figure is the calls per
second they reach together, as a ratio to 500: ≥ 1 means the governor keeps up with the load,
and the margin says by how much.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from typing import Any

from agentos.engine.shutdown import spawn_guard
from agentos.governor.credentials import KeyConfig
from agentos.governor.service import start_key_server
from agentos.item.keys import KeyOutcome

TARGET_CALLS_PER_SECOND = 500.0  # 10 items x 50 calls/s


def _item(proxy: Any, calls: int, start: Any, out: Any) -> None:
    start.wait()
    t0 = time.perf_counter()
    for _ in range(calls):
        grant = proxy.acquire_call("item", 100.0)
        proxy.end_call(grant.call_id, KeyOutcome.OK, {"tokens": 100})
    out.put(time.perf_counter() - t0)


def measure(items: int = 10, calls: int = 200, runs: int = 3) -> dict[str, Any]:
    keys = [KeyConfig(f"sk-bench-{n:04d}-roundtrip", rpm=1e9, tpm=1e12) for n in range(4)]
    with spawn_guard():
        server, proxy = start_key_server(list(keys))
    rates = []
    try:
        ctx = multiprocessing.get_context("fork")
        for _ in range(runs):
            start, out = ctx.Event(), ctx.Queue()
            procs = [
                ctx.Process(target=_item, args=(proxy, calls, start, out)) for _ in range(items)
            ]
            for p in procs:
                p.start()
            t0 = time.perf_counter()
            start.set()
            for p in procs:
                p.join(timeout=120)
            wall = time.perf_counter() - t0
            rates.append(items * calls / wall)
    finally:
        server.shutdown()
    median = statistics.median(rates)
    return {
        "title": f"governor round trips: {items} item processes asking for keys at full speed",
        "target": f"calls/s / {TARGET_CALLS_PER_SECOND:.0f} >= 1",
        "measured": round(median / TARGET_CALLS_PER_SECOND, 2),
        "passed": median >= TARGET_CALLS_PER_SECOND,
        "series": {
            "calls_per_second": {
                "min": round(min(rates)),
                "median": round(median),
                "max": round(max(rates)),
                "runs": len(rates),
            }
        },
        "notes": [
            f"one call = acquire_call + end_call, {1e3 * items / median:.2f} ms per call "
            "per item at the median"
        ],
    }


if __name__ == "__main__":
    print(measure())
