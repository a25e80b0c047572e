"""Progress while a batch runs: a tqdm bar on a terminal, a status line every 30 s elsewhere.

The bar lives on stderr and is redrawn by `Terminal.write`, which clears it before every block of
item lines and redraws it after, so prefixed lines are never torn by it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from agentos.workflows.parallel.terminal import Terminal

LINE_INTERVAL = 30.0  # seconds between status lines off a TTY; AGENTOS_STATUS_INTERVAL overrides
_BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"


def _interval() -> float:
    try:
        return max(0.05, float(os.environ.get("AGENTOS_STATUS_INTERVAL", LINE_INTERVAL)))
    except ValueError:
        return LINE_INTERVAL


class Progress:
    def __init__(self, terminal: Terminal, total: int, *, enabled: bool) -> None:
        self.terminal = terminal
        self.total = total
        self.enabled = enabled and total > 0
        self._bar: Any = None
        self._last_line = time.monotonic()
        self._interval = _interval()
        self._shown = (-1, -1, -1)
        if self.enabled and terminal.err_is_tty:
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: workers may be forked after this

            with terminal.lock:
                self._bar = tqdm(
                    total=total,
                    file=terminal.error_file(),
                    unit="item",
                    dynamic_ncols=True,
                    leave=False,
                    bar_format=_BAR_FORMAT,
                )
                terminal._bar = self._bar

    def update(self, done: int, failed: int, running: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            if (done, failed, running) != self._shown:
                self._shown = (done, failed, running)
                with self.terminal.lock:
                    self._bar.n = done + failed
                    self._bar.set_postfix_str(
                        f"{done} done, {failed} failed, {running} running", refresh=False
                    )
                    self._bar.refresh(nolock=True)
            return
        now = time.monotonic()
        if force or now - self._last_line >= self._interval:
            self._last_line = now
            self.terminal.message(f"{done}/{self.total} done, {failed} failed, {running} running")

    def close(self) -> None:
        if self._bar is not None:
            with self.terminal.lock:
                self.terminal._bar = None
                self._bar.close()
            self._bar = None
