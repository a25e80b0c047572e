"""`<run-dir>/state.json`: what a running parent tells `agentos status` without a connection.

The parent rewrites it atomically (readers see a whole file, old or new) when something happens
(start, an attempt starting or ending, draining, the end) and at most about once a second while it
waits, so its `heartbeat` shows whether the parent is alive. It holds key labels only, never a key.
Writing it must never fail a run: an OSError is one warning, and the run goes on without it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from agentos.workflows.parallel.journal import atomic_write_text

STATE_FILE = "state.json"

STARTING = "starting"
RUNNING = "running"
DRAINING = "draining"
TERMINATING = "terminating"
DONE = "done"

#: the least time between two writes. Events (an attempt starting) would otherwise each cost an
#: fsync; a burst of short items then writes once and the next tick catches up
MIN_GAP = 0.1
#: the heartbeat: a waiting parent rewrites the file this often
HEARTBEAT = 1.0

log = logging.getLogger("agentos")


class StateWriter:
    def __init__(self, run_dir: Path, command: str, started: float) -> None:
        self.path = run_dir / STATE_FILE
        self.static = {
            "command": command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": round(started, 3),
        }
        self._last = 0.0  # monotonic time of the last write
        self.dirty = False
        self.broken = False

    def due(self, *, event: bool) -> bool:
        """Should the caller build and write the state now? An event makes the state dirty; it
        is written at once unless a write was just made, in which case the next tick writes it."""
        if self.broken:
            return False
        if event:
            self.dirty = True
        gap = time.monotonic() - self._last
        return gap >= HEARTBEAT or (self.dirty and gap >= MIN_GAP)

    def write(self, data: dict[str, Any]) -> None:
        if self.broken:
            return
        self._last = time.monotonic()
        self.dirty = False
        state = {**self.static, "heartbeat": round(time.time(), 3), **data}
        try:
            atomic_write_text(self.path, json.dumps(state, ensure_ascii=False) + "\n")
        except (OSError, TypeError, ValueError) as exc:
            self.broken = True
            log.warning(
                "cannot write %s (%s); `agentos status` will not see this run", self.path, exc
            )


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The run's state, or None when it has none (an older agentos) or it is unreadable."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
