"""How a Ctrl+C outside a run ends agentos: one line on stderr, exit 130, never a traceback.

A run installs its own handlers (agentos.engine.shutdown) and says itself what it stopped. Before
that, `agentos.__main__` installs `stop_at_start` while modules load, then the CLI turns any
KeyboardInterrupt into `exit_interrupted`, in one place (agentos.commands.cli). This module
imports nothing but what the interpreter has loaded before `main` runs, so `agentos.__main__` can
import it ahead of everything else.
"""

import _signal
import os
import sys

TYPE_CHECKING = False  # not typing's: loading typing costs more than the rest of start-up here
if TYPE_CHECKING:
    from typing import NoReturn

#: what a Ctrl+C before a run began stopped: nothing
STOPPED_BEFORE_RUN = " before the run started: nothing was done; run the command again"
_EXIT_SIGINT = 130  # agentos.errors.EXIT_SIGINT, not imported: see the module docstring


def stop_at_start(signum: int, frame: object) -> None:
    """SIGINT while `agentos.__main__`'s own imports load: nothing exists yet to undo."""
    os.write(2, b"agentos: interrupted" + STOPPED_BEFORE_RUN.encode() + b"\n")
    os._exit(_EXIT_SIGINT)


def exit_interrupted(*, before_run: bool = False) -> "NoReturn":
    """Exit 130 after a Ctrl+C that arrived outside a run; `before_run`: it stopped a workflow
    command before its run began."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # a second Ctrl+C must not cut the exit short
    sys.stderr.write(f"agentos: interrupted{STOPPED_BEFORE_RUN if before_run else ''}\n")
    # CPython marks a KeyboardInterrupt that ends a string eval (the code namedtuple and
    # dataclasses generate while modules load) as unhandled, even once it is caught, and under
    # `python -m` then kills the process with SIGINT instead of exiting 130; the mark is
    # cleared at the start of every string eval
    eval("0")
    sys.exit(_EXIT_SIGINT)
