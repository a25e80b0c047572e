"""`python -m agentos` and the `agentos` console script.

The import of the CLI is inside `main`, after `EarlyInterrupt` is installed, so that a Ctrl+C
while the interpreter is still loading modules ends with exit 130 and one line, not a traceback,
and one whose KeyboardInterrupt the interpreter drops still stops the run."""

from __future__ import annotations

import gc
import signal
import sys

from agentos import quick_exit


def exit_interrupted() -> None:
    """Exit 130 after a Ctrl+C that arrived outside a run (a run has its own handlers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not cut the exit short
    sys.stderr.write("agentos: interrupted\n")
    sys.exit(130)


def main() -> None:
    quick_exit.install()  # first: see its docstring
    # No garbage collection while modules load: they are all long-lived, and the passes the
    # interpreter would make over them are a tenth of a small run's start-up. Freezing them
    # afterwards keeps them out of every later pass, the one at exit included, and out of the
    # pages forked workers would otherwise copy (the gc.freeze() recipe in Python's docs).
    gc.disable()
    try:
        from agentos.workflows.parallel.shutdown import EarlyInterrupt

        EarlyInterrupt.install()
        from agentos.cli import main as cli_main

        gc.freeze()
        gc.enable()
        cli_main()
    except KeyboardInterrupt:
        exit_interrupted()


if __name__ == "__main__":
    main()
