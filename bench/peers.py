"""Python peers for the Python-items scenario: the same no-op calls through raw loky and through
concurrent.futures.ProcessPoolExecutor, submitted all at once and awaited, as a user would.

    python -m bench.peers loky 2000 2
    python -m bench.peers futures 2000 2
"""

from __future__ import annotations

import sys


def noop(n: int) -> int:
    return n


def main(kind: str, count: int, workers: int) -> None:
    if kind == "loky":
        import loky

        executor = loky.ProcessPoolExecutor(max_workers=workers, timeout=None)
    else:
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(max_workers=workers)
    with executor:
        futures = [executor.submit(noop, n) for n in range(count)]
        for future in futures:
            future.result()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
