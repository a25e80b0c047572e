"""`python -m agentos` and the `agentos` console script.

The import of the CLI is inside `main`, after `EarlyInterrupt` is installed, so that a Ctrl+C
while the interpreter is still loading modules ends with exit 130 and one line, not a traceback,
and one whose KeyboardInterrupt the interpreter drops still stops the run."""

from __future__ import annotations

import _signal

_EARLY: list[int] = []


def _note(signum: int, frame: object) -> None:
    _EARLY.append(signum)


# first, before any import (`signal` alone loads enum, functools and collections): a Ctrl+C from
# here on is noted by the builtin `_signal`, then ends the program with one line as soon as the
# module that says it is loaded, and at once after that
if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _note)

from agentos.commands.interrupted import exit_interrupted, stop_at_start  # noqa: E402

if _signal.getsignal(_signal.SIGINT) is _note:
    _signal.signal(_signal.SIGINT, stop_at_start)
    if _EARLY:
        stop_at_start(_EARLY[0], None)

import gc  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from agentos.commands import quick_exit  # noqa: E402


def main() -> None:
    quick_exit.install()  # first: see its docstring
    # No garbage collection while modules load: they are all long-lived, and the passes the
    # interpreter would make over them are a tenth of a small run's start-up. Freezing them
    # afterwards keeps them out of every later pass, the one at exit included, and out of the
    # pages forked workers would otherwise copy (the gc.freeze() recipe in Python's docs).
    gc.disable()
    try:
        if signal.getsignal(signal.SIGINT) is stop_at_start:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # raises inside this try
        from agentos.engine.shutdown import EarlyInterrupt

        EarlyInterrupt.install()
        from agentos.commands.cli import main as cli_main

        gc.freeze()
        gc.enable()
        cli_main()
    except KeyboardInterrupt:  # the CLI handles its own: this one came while modules loaded
        exit_interrupted(before_run=True)
    except Exception as exc:
        # a KeyboardInterrupt raised where Python wraps it (a class body's __set_name__ makes
        # it a RuntimeError) is still the user's Ctrl+C, not a bug
        if _interrupt_in(exc):
            exit_interrupted(before_run=not _run_began())
        raise


def _run_began() -> bool:
    """Whether the run's own handlers were in (it then said what it stopped); read without an
    import, which a Ctrl+C may have cut short."""
    shutdown = sys.modules.get("agentos.engine.shutdown")
    began = getattr(shutdown, "run_began", None)
    return bool(began()) if callable(began) else False


def _interrupt_in(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


if __name__ == "__main__":
    main()
