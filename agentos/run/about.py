"""What a run was, for the people who read about it later: `agentos report` shows it.

Recorded once, in `run.json`, beside the identity `--resume` compares (which it is not part of:
the same run may be resumed from another machine, or with other options). The command line is
stored with notification URLs (they carry tokens) and keys masked.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

from agentos.engine.options import RunnerOptions
from agentos.governor.credentials import Redactor

#: run.json entries that describe a run; `--resume` compares everything else
ABOUT_FIELDS = ("argv", "options", "machine")
_SECRET_OPTIONS = ("--notify",)


def masked_argv(argv: list[str], redactor: Redactor | None = None) -> list[str]:
    """The command line with the values of secret-bearing options replaced, and keys labelled."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append("<hidden>")
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name in _SECRET_OPTIONS:
            if eq:
                shown.append(f"{name}=<hidden>")
            else:
                shown.append(arg)
                hide_next = True
            continue
        shown.append(redactor.text(arg) if redactor else arg)
    return shown


def machine_record() -> dict[str, Any]:
    # not platform.platform(): on Linux it runs `uname -p` and scans the Python binary for its
    # glibc version, 9 ms of every run's start-up
    uname = os.uname()
    return {
        "host": socket.gethostname(),
        "platform": f"{uname.sysname}-{uname.release}-{uname.machine}",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def run_about(options: RunnerOptions, redactor: Redactor | None = None) -> dict[str, Any]:
    program = Path(sys.argv[0]).name if sys.argv else "agentos"
    if program == "__main__.py":  # python -m agentos
        program = "agentos"
    argv = [program, *sys.argv[1:]]
    return {
        "argv": masked_argv(argv, redactor),
        "options": options.record(),
        "machine": machine_record(),
    }
