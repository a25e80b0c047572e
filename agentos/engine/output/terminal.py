"""The parent's terminal: one lock for everything agentos writes, colours, and the progress display.

Item lines (from the output listener), agentos' own `[agentos] ...` messages and the tqdm bar all
go through `Terminal`, so a bar redraw never lands inside an item's line. The terminal writes to
duplicates of fds 1 and 2 taken at start, so it keeps reaching the real terminal even while an
in-process item has fds 1 and 2 redirected into the capture pipe.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import io
import os
import sys
import threading
import time
from typing import IO, Protocol

from agentos.engine.output.escape import escape_text


@functools.cache
def _palette() -> tuple[tuple[str, ...], str, str]:
    """(item colours, bright, reset). colorama is imported only when colours are on: most runs
    write to a pipe or a file, and its import was a fiftieth of a small run's start-up."""
    from colorama import Fore, Style

    tints = (
        Fore.CYAN,
        Fore.GREEN,
        Fore.YELLOW,
        Fore.MAGENTA,
        Fore.BLUE,
        Fore.LIGHTRED_EX,
        Fore.LIGHTCYAN_EX,
        Fore.LIGHTGREEN_EX,
        Fore.LIGHTYELLOW_EX,
        Fore.LIGHTMAGENTA_EX,
    )
    return tints, Style.BRIGHT, Style.RESET_ALL


def colour_wanted(no_color_flag: bool, stream: IO[str] | None = None) -> bool:
    """Colours only on a TTY, never with --no-color or NO_COLOR set (https://no-color.org)."""
    if no_color_flag or os.environ.get("NO_COLOR"):
        return False
    stream = stream if stream is not None else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def item_prefix(item_id: str, colour: bool) -> bytes:
    if not colour:
        return f"[{item_id}] ".encode()
    tints, _, reset = _palette()
    tint = tints[binascii.crc32(item_id.encode()) % len(tints)]  # the same id, the same colour
    return f"{tint}[{item_id}]{reset} ".encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        view = view[written:]


class StatusBar(Protocol):
    """The progress bar as the terminal sees it; both are called with the terminal's lock held."""

    def clear(self) -> None: ...

    def redraw(self) -> None: ...


class Terminal:
    """Serialised writes to the parent's stdout and stderr."""

    def __init__(
        self, *, colour: bool = False, quiet: bool = False, fds: tuple[int, int] = (1, 2)
    ) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        self.out_fd = os.dup(fds[0])
        self.err_fd = os.dup(fds[1])
        self.colour = colour
        self.quiet = quiet
        self.lock = threading.RLock()
        self.bar: StatusBar | None = None  # while a progress bar is shown
        self.err_is_tty = os.isatty(self.err_fd)
        self.out_is_tty = os.isatty(self.out_fd)

    def close(self) -> None:
        with self.lock:
            for fd in (self.out_fd, self.err_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.out_fd = self.err_fd = -1

    # -- raw item output, called by the listener with whole lines only
    def write(self, stream: int, data: bytes) -> None:
        fd = self.out_fd if stream == 1 else self.err_fd
        with self.lock:
            # stdout lines that go to a file or pipe never meet the bar on the screen
            bar = self.bar if stream == 2 or self.out_is_tty else None
            if bar is not None:
                bar.clear()
            # a reader that went away (`agentos run ... | head`) drops output, not running items
            with contextlib.suppress(BrokenPipeError):
                _write_all(fd, data)
            if bar is not None:
                bar.redraw()

    def message(self, text: str, *, force: bool = False) -> None:
        """An agentos line on stderr: `[agentos] text`. Suppressed by -q unless `force`. `text`
        may quote an item or an agent (an error, a title): its control characters are shown,
        not obeyed."""
        if self.quiet and not force:
            return
        text = escape_text(text)
        label = "[agentos]"
        if self.colour and self.err_is_tty:
            _, bright, reset = _palette()
            label = f"{bright}[agentos]{reset}"
        # an item's bytes that were not UTF-8 go out as they came, as its own output does
        self.write(2, f"{label} {text}\n".encode("utf-8", "surrogateescape"))

    def error_file(self) -> io.TextIOBase:
        """A text stream onto the real stderr, for tqdm and for final reports."""
        return _FdText(self, 2)


class _FdText(io.TextIOBase):
    """Minimal text stream over the terminal's fd, used by tqdm (which wants `.write`/`.flush`)."""

    def __init__(self, terminal: Terminal, stream: int) -> None:
        self._terminal = terminal
        self._fd = terminal.err_fd if stream == 2 else terminal.out_fd

    def write(self, text: str) -> int:
        if self._fd >= 0:
            with contextlib.suppress(BrokenPipeError, OSError):
                _write_all(self._fd, text.encode("utf-8", "surrogateescape"))
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return self._fd >= 0 and os.isatty(self._fd)
