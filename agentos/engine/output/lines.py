"""What becomes of an attempt's output once the listener has read it: whole lines, keys replaced,
the raw bytes appended to the item's log (`logs/<id>.log`, up to --item-log-size), and the lines
escaped and prefixed with the item's id on the terminal, one write per block.

Bulk, not per line: a block of complete lines is handled with C-level bytes operations (one
`bytes.replace` prefixes them all); per-line Python is several times slower. A partial line is
held until its newline arrives (so lines of two items never mix), printed whole and terminated
at EOF, and force-split at MAX_LINE so an item printing 50 MB without a newline cannot exhaust
the parent's memory.

Runs on the listener's thread, parent side.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from agentos.beneath import Beneath, UnsafePath
from agentos.engine.output.escape import escape_lines

if TYPE_CHECKING:  # the terminal (and colorama) is the parent's business, not the workers'
    from agentos.engine.output.terminal import Terminal

MAX_LINE = 1024 * 1024
_LOG_FAILED = -2  # log_fd of an attempt whose log could not be written

Redactor = Callable[[bytes], bytes]


def attempt_header(item_id: str, attempt: int, started: float) -> bytes:
    """The line that opens each attempt's part of `logs/<id>.log` (`agentos logs` shows it)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
    return f"==> {item_id} attempt {attempt}, started {when} <==\n".encode()


@dataclass(eq=False)
class AttemptOutput:
    """Both streams of one item attempt, and its log file."""

    item_id: str
    attempt: int
    pid: int
    started: float
    open_streams: int = 2  # stdout and stderr; each EOF counts down
    log_fd: int = -1  # opened on the first line, so silent items leave no empty log
    log_room: int = -1  # bytes the log may still take (--item-log-size); -1: no limit
    closed: threading.Event = field(default_factory=threading.Event)
    streams: list[Stream] = field(default_factory=list)


@dataclass(eq=False)
class Stream:
    """One output stream of one attempt: a pipe's read end, or fed from elsewhere (Dask)."""

    fd: int  # -1 for a stream fed by the listener's external_data
    stream: int = 0
    attempt: AttemptOutput | None = None
    pending: bytes = b""
    prefix: bytes = b""
    newline_prefix: bytes = b""
    escape: bool = True  # control characters shown, not obeyed (escape.py)
    keep_sgr: bool = False


class LineRules(NamedTuple):
    """How lines are shown and kept: `prefix` each with its item's id, `redactor` the keys out
    of them, each item's log at most `log_limit` bytes (--item-log-size)."""

    prefix: bool = True
    redactor: Redactor | None = None
    log_limit: int | None = None


class LineWriter:
    """Turns the bytes of attempts' streams into lines on the terminal and in the items' logs
    (`log_dir`; None: no logs)."""

    def __init__(self, terminal: Terminal, log_dir: Path | None, rules: LineRules) -> None:
        self.terminal = terminal
        self.log_dir = log_dir
        self.rules = rules
        #: the longest key's length: a force-split line keeps this many bytes back, so a key is
        #: never cut in two
        self.max_key = 0
        # the logs directory is held open and each log opened in it without following links:
        # an item (or whoever wrote in a reused run directory) may have planted one
        self._logs: Beneath | None = None
        if log_dir is not None:
            with Beneath(log_dir.parent, create=True) as run_dir:
                self._logs = run_dir.sub(log_dir.name, create=True)

    def close(self) -> None:
        if self._logs is not None:
            self._logs.close()

    def attach(self, conn: Stream, record: AttemptOutput, stream: int) -> None:
        """Give a stream (a pipe, or one fed by the Dask backend) its attempt and prefix."""
        conn.stream = stream
        conn.attempt = record
        # Prefixed lines are for people (and `| tee` shows them on a terminal too): always
        # escaped. Unprefixed (sequential) output is the items' own bytes unless it goes to a
        # terminal. Colours stay where agentos shows its own.
        tty = self.terminal.out_is_tty if stream == 1 else self.terminal.err_is_tty
        conn.escape = self.rules.prefix or tty
        conn.keep_sgr = tty and self.terminal.colour
        if self.rules.prefix:
            from agentos.engine.output.terminal import item_prefix

            conn.prefix = item_prefix(record.item_id, self.terminal.colour)
            conn.newline_prefix = b"\n" + conn.prefix

    def feed(self, conn: Stream, data: bytes) -> None:
        """Bytes read from `conn`: its complete lines go out now, the rest waits."""
        if conn.pending:
            data = conn.pending + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) <= MAX_LINE:
                conn.pending = data
                return
            self._force_split(conn, data)
            return
        conn.pending = data[cut:]
        self._emit(conn, data[:cut])

    def flush(self, conn: Stream) -> None:
        """`conn` is at its end: its partial line goes out, terminated."""
        if conn.pending and conn.attempt is not None:
            pending, conn.pending = conn.pending, b""
            self._emit(conn, pending + b"\n")

    @staticmethod
    def close_log(attempt: AttemptOutput) -> None:
        if attempt.log_fd >= 0:
            os.close(attempt.log_fd)
            attempt.log_fd = -1

    def _force_split(self, conn: Stream, data: bytes) -> None:
        """A line longer than MAX_LINE: print it in MAX_LINE pieces. Keys are replaced first and
        the last (longest key - 1) bytes are held back, so a key cannot be cut in two."""
        if self.rules.redactor is not None:
            data = self.rules.redactor(data)
        split = len(data) - max(self.max_key - 1, 0)
        pieces = [data[i : min(i + MAX_LINE, split)] for i in range(0, split, MAX_LINE)]
        conn.pending = data[split:]
        self._emit(conn, b"\n".join(pieces) + b"\n")

    def _emit(self, conn: Stream, block: bytes) -> None:
        """`block` is one or more complete lines, each ending in b"\\n"."""
        if self.rules.redactor is not None:
            block = self.rules.redactor(block)
        attempt = conn.attempt
        if attempt is not None and self.log_dir is not None and attempt.log_fd != _LOG_FAILED:
            self._log(attempt, block)  # the log keeps the raw bytes
        if conn.escape:
            block = escape_lines(block, keep_sgr=conn.keep_sgr)
        if conn.prefix:
            block = conn.prefix + block[:-1].replace(b"\n", conn.newline_prefix) + b"\n"
        self.terminal.write(conn.stream, block)

    def _log(self, attempt: AttemptOutput, block: bytes) -> None:
        """Append to the item's log. A log that cannot be written (disk full, run directory
        deleted) is reported once and given up; the item's output still reaches the terminal,
        and the listener must never die of it, or the workers would block on full sockets."""
        assert self.log_dir is not None
        path = self.log_dir / f"{attempt.item_id}.log"
        try:
            if attempt.log_fd < 0:
                assert self._logs is not None
                attempt.log_fd = self._logs.open(path.name, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                # once per attempt, where its log is opened (on its first line, so a silent
                # attempt leaves no log): attempts of a retried item are told apart in the file
                started = time.time() - (time.monotonic() - attempt.started)
                os.write(attempt.log_fd, attempt_header(attempt.item_id, attempt.attempt, started))
                if self.rules.log_limit is not None:
                    room = self.rules.log_limit - os.fstat(attempt.log_fd).st_size
                    attempt.log_room = max(0, room)
            if attempt.log_room >= 0 and len(block) > attempt.log_room:
                self._cut_log(attempt, block)
                return
            os.write(attempt.log_fd, block)
            if attempt.log_room >= 0:
                attempt.log_room -= len(block)
        except OSError as exc:
            if attempt.log_fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(attempt.log_fd)
            attempt.log_fd = _LOG_FAILED
            why = str(exc)
            if not isinstance(exc, UnsafePath):
                why = f"cannot write {path}: {exc.strerror}"
            self.terminal.message(
                f"{why}; {attempt.item_id}'s output goes on to the terminal only",
                force=True,
            )

    def _cut_log(self, attempt: AttemptOutput, block: bytes) -> None:
        """The log reached --item-log-size: what fits (whole lines), a line saying so, and no
        more for this attempt. Its output still reaches the terminal."""
        keep = block[: block.rfind(b"\n", 0, attempt.log_room) + 1]
        os.write(attempt.log_fd, keep)
        os.write(
            attempt.log_fd,
            b"==> agentos: log cut at --item-log-size %d bytes; the rest went to the terminal "
            b"only <==\n" % (self.rules.log_limit or 0),
        )
        os.close(attempt.log_fd)
        attempt.log_fd = _LOG_FAILED
