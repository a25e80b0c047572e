"""Progress while a batch runs: a tqdm bar on a terminal, a status line every 30 s elsewhere.

The bar lives on stderr and is redrawn by `Terminal.write`, which clears it before every block of
item lines and redraws it after (at most every REDRAW_INTERVAL), so prefixed lines are never torn
by it. Every redraw asks the batch for its counts afresh, so the count beside the lines being
printed is the one of that moment, not the one from the controller's last round.

The bar is never wider than the terminal minus one column: a line that wraps cannot be taken back
by the carriage return that redraws it, so each redraw would leave a stale copy above it. On a
narrow terminal the bar itself and then the times give way before the counts do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from agentos.engine.output.terminal import Terminal

LINE_INTERVAL = 30.0  # seconds between status lines off a TTY; AGENTOS_STATUS_INTERVAL overrides
#: richest first; the first one that fits the terminal is drawn (tqdm cuts the last one to fit)
_BAR_FORMATS = (
    "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
    "{n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
    "{n_fmt}/{total_fmt}{postfix}",
)

#: (done, failed, running) right now
Counts = Callable[[], tuple[int, int, int]]


def _interval() -> float:
    try:
        return max(0.05, float(os.environ.get("AGENTOS_STATUS_INTERVAL", LINE_INTERVAL)))
    except ValueError:
        return LINE_INTERVAL


class Progress:
    def __init__(self, terminal: Terminal, total: int, counts: Counts, *, enabled: bool) -> None:
        self.terminal = terminal
        self.total = total
        self.counts = counts
        self.enabled = enabled and total > 0
        self._bar: Any = None  # tqdm, used only to lay the line out; we draw it ourselves
        self._out: Any = None  # the terminal's stderr, while there is a bar
        self._last_line = time.monotonic()
        self._interval = _interval()
        self._drawn = 0  # length of the bar on the screen now; 0 when it is not shown
        self._line: tuple[tuple[int | None, int, int, int, int, str], str] | None = None
        #: words for the end of the line, by topic, set by the batch: the countdown while every
        #: key is out of quota ("keys"), the spend so far ("spend")
        self.notes: dict[str, str] = {}
        self.note = ""  # the notes joined, as shown
        if self.enabled and terminal.err_is_tty:
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: workers may be forked after this

            self._out = terminal.error_file()
            with terminal.lock:
                self._bar = tqdm(
                    total=total,
                    file=self._out,
                    unit="item",
                    leave=False,
                    bar_format=_BAR_FORMATS[0],
                    delay=float("inf"),  # tqdm never draws: it would not know the width
                )
                self.redraw()
                terminal.bar = self

    def set_note(self, topic: str, text: str) -> None:
        self.notes[topic] = text
        self.note = ", ".join(note for note in self.notes.values() if note)

    def update(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            with self.terminal.lock:
                self.redraw()
            return
        now = time.monotonic()
        if force or now - self._last_line >= self._interval:
            self._last_line = now
            done, failed, running = self.counts()
            note = f"; {self.note}" if self.note else ""
            self.terminal.message(
                f"{done}/{self.total} done, {failed} failed, {running} running{note}"
            )

    # -- the terminal's StatusBar: called with the terminal's lock held, around every block of
    #    item lines, so both are cheap: the line is laid out again only when it changes
    def clear(self) -> None:
        if self._drawn:
            self._out.write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def redraw(self) -> None:
        if self._bar is None:
            return
        line = self._layout()
        self._out.write("\r" + line)
        self._drawn = max(len(line), 1)

    def _layout(self) -> str:
        bar = self._bar
        done, failed, running = self.counts()
        width = self._width()
        # the times shown change once a second: until then the last layout stands
        key = (width, done, failed, running, int(time.time() - bar.start_t), self.note)
        if self._line is not None and self._line[0] == key:
            return self._line[1]
        bar.n = done + failed
        note = f", {self.note}" if self.note else ""
        bar.set_postfix_str(f"{done} done, {failed} failed, {running} running{note}", refresh=False)
        bar.ncols = width
        bar.bar_format = self._fitting_format(width)
        line = str(bar)  # cut to `width` by tqdm
        self._line = (key, line)
        return line

    def _width(self) -> int | None:
        """Columns the bar may use; None when the terminal does not say (a pty nobody sized)."""
        try:
            columns = os.get_terminal_size(self.terminal.err_fd).columns
        except OSError:
            return None
        # one short of the edge: a line that reaches the last column leaves some terminals about
        # to wrap, and the carriage return of the next redraw then lands on the line below
        return columns - 1 if columns > 1 else None

    def _fitting_format(self, width: int | None) -> str:
        if width is None:
            return _BAR_FORMATS[0]
        bar = self._bar
        for candidate in _BAR_FORMATS:
            # measured with the bar at tqdm's default 10 columns: a narrower bar says too little
            shape = {**bar.format_dict, "bar_format": candidate, "ncols": None}
            if len(bar.format_meter(**shape)) <= width:
                return candidate
        return _BAR_FORMATS[-1]

    def close(self) -> None:
        if self._bar is not None:
            with self.terminal.lock:
                self.terminal.bar = None
                self.clear()
                self._bar.close()
            self._bar = None
