"""A Python program that prints N numbered lines, as a Python tool or agent does: with
PYTHONUNBUFFERED=1 (containers, CI, many agent wrappers) every `print` is its own `write`.

    python bench/emitter.py 100000
"""

from __future__ import annotations

import sys


def main(count: int) -> None:
    for n in range(1, count + 1):
        print(n)


if __name__ == "__main__":
    main(int(sys.argv[1]))
