"""Item output: captured at the file-descriptor level in the worker (capture.py), prefixed in
the parent by the listener here.

    worker (one item at a time)                     parent: OutputListener thread
    ---------------------------                     ------------------------------
    connect 2 sockets, send header  ─────────────►  accept; header names item, stream, pid
    dup2(sock_out, 1); dup2(sock_err, 2)            read 256 KiB chunks, cut at the last b"\\n",
    execute_item: print(), logging, subprocesses    redact keys, write plain lines to logs/<id>.log,
      all write to fds 1/2, so all are captured     prefix b"[<id>] " with one bytes.replace,
    flush; restore fds; shutdown(SHUT_WR)  ───────► EOF = the item's output is complete
                                                    (the controller waits for it before it records
                                                    the attempt, so late lines are never lost)

Why it is built this way:

* Replacing `sys.stdout` in a loky worker kills it (faulthandler is bound to fd 2) and misses the
  output of subprocesses, so capture is `os.dup2` onto fds 1 and 2.
* One connection per item attempt and stream, instead of one pipe per worker with a reader that
  tags lines by "the current item": the connection *is* the attribution, so a line cannot be
  given to the wrong item, however late it is written. `shutdown(SHUT_WR)` ends the stream for
  every holder of the descriptor at once: it is the end-of-item marker, delivered in order after
  the last byte, and a leftover background process that writes afterwards gets EPIPE instead of
  writing into the next item's output.
* Bulk, not per line: the listener handles whole chunks of complete lines with C-level bytes
  operations; per-line Python (or logging records, or a Manager queue) is several times slower.
* A partial line is held until its newline arrives (so lines of two items never mix), printed
  whole and terminated at EOF, and force-split at 1 MiB so an item printing 50 MB without a newline
  cannot exhaust the parent's memory.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agentos.workflows.parallel.capture import MAGIC as _MAGIC

if TYPE_CHECKING:  # the terminal (and colorama) is the parent's business, not the workers'
    from agentos.workflows.parallel.terminal import Terminal

_READ_SIZE = 256 * 1024
MAX_LINE = 1024 * 1024
_HEADER_LIMIT = 512
_LOG_FAILED = -2  # log_fd of an attempt whose log could not be written

Redactor = Callable[[bytes], bytes]


def attempt_header(item_id: str, attempt: int, started: float) -> bytes:
    """The line that opens each attempt's part of `logs/<id>.log` (`agentos logs` shows it)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
    return f"==> {item_id} attempt {attempt}, started {when} <==\n".encode()


def new_listener_address() -> str:
    """An address for the listening socket: abstract on Linux (nothing to clean up), else a path
    in a private temporary directory."""
    import secrets
    import tempfile

    if sys.platform.startswith("linux"):
        return "\0agentos-" + secrets.token_hex(8)
    directory = tempfile.mkdtemp(prefix="agentos-")  # pragma: no cover
    return os.path.join(directory, "out.sock")  # pragma: no cover


# ----------------------------------------------------------------------------------------------
# parent side


@dataclass
class _Attempt:
    """Both streams of one item attempt, and its log file."""

    item_id: str
    attempt: int
    pid: int
    started: float
    open_streams: int = 2  # stdout and stderr; each EOF counts down
    log_fd: int = -1  # opened on the first line, so silent items leave no empty log
    closed: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Conn:
    sock: socket.socket | None  # None for a stream fed from elsewhere (the Dask backend)
    header: bytes = b""
    stream: int = 0
    attempt: _Attempt | None = None
    pending: bytes = b""
    pending_header: bool = True
    prefix: bytes = b""
    newline_prefix: bytes = b""


StartedCallback = Callable[[str, int, int], None]


class OutputListener:
    """Accepts item connections and turns their bytes into prefixed lines and log files."""

    def __init__(
        self,
        terminal: Terminal,
        log_dir: Path | None,
        *,
        prefix: bool = True,
        redactor: Redactor | None = None,
        on_started: StartedCallback | None = None,
    ) -> None:
        self.terminal = terminal
        self.log_dir = log_dir
        self.prefix = prefix
        self.redactor = redactor
        self.on_started = on_started
        import secrets

        self.address = new_listener_address()
        self.token = secrets.token_hex(16)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        self._server.listen(128)
        self._server.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._server, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = os.pipe()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._headerless = 0  # accepted connections whose header is not read yet
        self._external: dict[tuple[str, int, int], _Conn] = {}
        self._max_key = 0
        self._thread = threading.Thread(target=self._run, name="agentos-output", daemon=True)
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)

    def set_max_secret_length(self, length: int) -> None:
        """Force-split partial lines keeping this many bytes, so a key is never cut in two."""
        self._max_key = length

    # -- lifecycle
    @property
    def started(self) -> bool:
        return self._thread.is_alive() or self._thread.ident is not None

    def start(self) -> OutputListener:
        self._thread.start()
        return self

    def stop(self, drain_timeout: float = 1.0) -> None:
        """Read what open connections still hold (up to `drain_timeout`), then close them."""
        if self._stopping:
            return  # already stopped
        self._stopping = True
        self._drain_deadline = time.monotonic() + drain_timeout
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self.started:
            self._thread.join(timeout=drain_timeout + 2.0)
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, _Conn):
                self._close(key.data)
        self._selector.close()
        self._server.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if not self.address.startswith("\0"):  # pragma: no cover - non-Linux socket file
            with contextlib.suppress(OSError):
                os.unlink(self.address)
                os.rmdir(os.path.dirname(self.address))

    # -- queries from the controller thread
    def wait_closed(self, item_id: str, attempt: int, timeout: float) -> bool:
        """Wait until both output streams of this attempt reached EOF (all output is printed)."""
        with self._lock:
            record = self._attempts.get((item_id, attempt))
        if record is None:
            return True  # the attempt never produced a connection (failed before it started)
        ok = record.closed.wait(timeout)
        if ok:
            with self._lock:
                self._attempts.pop((item_id, attempt), None)
        return ok

    def settle(self, timeout: float) -> None:
        """Wait (up to `timeout`) until every connection already made has been accepted and its
        header read, so `running_pid` knows every attempt that started. Used after workers died:
        their connections are complete by then, only our reading may lag."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            backlog, _, _ = select.select([self._server], [], [], 0)
            with self._lock:
                waiting = self._headerless
            if not backlog and not waiting:
                return
            time.sleep(0.005)

    def running_pid(self, item_id: str, attempt: int) -> tuple[int, float] | None:
        """(worker pid, monotonic start) of an attempt whose output connection arrived."""
        with self._lock:
            record = self._attempts.get((item_id, attempt))
        return (record.pid, record.started) if record else None

    # -- the thread
    def _run(self) -> None:
        try:
            while True:
                timeout = None
                if self._stopping:
                    timeout = max(0.0, self._drain_deadline - time.monotonic())
                    if timeout == 0.0:
                        return
                events = self._selector.select(timeout if self._stopping else None)
                if self._stopping and not events:
                    return
                for key, _ in events:
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 64)
                        if self._stopping and not self._has_connections():
                            return
                    else:
                        self._read_guarded(key.data)
        except Exception as exc:  # pragma: no cover - a bug here must not hang the run
            self.terminal.message(f"output listener failed: {exc!r}", force=True)

    def _read_guarded(self, conn: _Conn) -> None:
        """One connection's trouble stays that connection's: it is closed (so its writer gets
        EPIPE instead of blocking) and the listener goes on serving the others."""
        try:
            self._read(conn)
        except Exception as exc:
            self.terminal.message(f"dropped an output stream after an error: {exc!r}", force=True)
            with contextlib.suppress(Exception):
                self._close(conn)

    def _has_connections(self) -> bool:
        return any(isinstance(k.data, _Conn) for k in self._selector.get_map().values())

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            with self._lock:
                self._headerless += 1
            self._selector.register(sock, selectors.EVENT_READ, _Conn(sock))

    def _read(self, conn: _Conn) -> None:
        assert conn.sock is not None  # only socket connections are registered with the selector
        try:
            data = conn.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        if conn.attempt is None:
            self._read_header(conn, data)
        else:
            self._feed(conn, data)

    def _read_header(self, conn: _Conn, data: bytes) -> None:
        conn.header += data
        end = conn.header.find(b"\n")
        if end < 0:
            if len(conn.header) > _HEADER_LIMIT:
                self._close(conn, valid=False)
            return
        line, rest = conn.header[:end], conn.header[end + 1 :]
        conn.header = b""
        parts = line.split(b" ")
        try:
            if len(parts) != 6 or parts[0] != _MAGIC or parts[1].decode() != self.token:
                raise ValueError("not an agentos worker")
            stream, attempt_no, pid = int(parts[2]), int(parts[3]), int(parts[4])
            item_id = parts[5].decode()
        except (ValueError, UnicodeDecodeError):
            self._close(conn, valid=False)
            return
        key = (item_id, attempt_no)
        with self._lock:
            self._headerless -= 1
            conn.pending_header = False
            record = self._attempts.get(key)
            first = record is None
            if record is None:
                record = _Attempt(item_id, attempt_no, pid, time.monotonic())
                self._attempts[key] = record
        self._attach(conn, record, 1 if stream == 1 else 2)
        if first and self.on_started is not None:
            self.on_started(item_id, attempt_no, pid)
        if rest:
            self._feed(conn, rest)

    def _feed(self, conn: _Conn, data: bytes) -> None:
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

    def _force_split(self, conn: _Conn, data: bytes) -> None:
        """A line longer than MAX_LINE: print it in MAX_LINE pieces. Keys are replaced first and
        the last (longest key - 1) bytes are held back, so a key cannot be cut in two."""
        if self.redactor is not None:
            data = self.redactor(data)
        split = len(data) - max(self._max_key - 1, 0)
        pieces = [data[i : min(i + MAX_LINE, split)] for i in range(0, split, MAX_LINE)]
        conn.pending = data[split:]
        self._emit(conn, b"\n".join(pieces) + b"\n")

    def _emit(self, conn: _Conn, block: bytes) -> None:
        """`block` is one or more complete lines, each ending in b"\\n"."""
        if self.redactor is not None:
            block = self.redactor(block)
        attempt = conn.attempt
        if attempt is not None and self.log_dir is not None and attempt.log_fd != _LOG_FAILED:
            self._log(attempt, block)
        if conn.prefix:
            block = conn.prefix + block[:-1].replace(b"\n", conn.newline_prefix) + b"\n"
        self.terminal.write(conn.stream, block)

    # -- streams fed from elsewhere: the Dask backend forwards item output as events, which
    #    then take exactly the path socket data takes (prefix, redaction, log file, EOF)
    def external_start(self, item_id: str, attempt_no: int, pid: int) -> None:
        with self._lock:
            if (item_id, attempt_no) in self._attempts:
                return
            self._attempts[(item_id, attempt_no)] = _Attempt(
                item_id, attempt_no, pid, time.monotonic()
            )
        for stream in (1, 2):
            conn = _Conn(None, pending_header=False)
            self._attach(conn, self._attempts[(item_id, attempt_no)], stream)
            self._external[(item_id, attempt_no, stream)] = conn
        if self.on_started is not None:
            self.on_started(item_id, attempt_no, pid)

    def _attach(self, conn: _Conn, record: _Attempt, stream: int) -> None:
        """Give a stream (a socket, or one fed by the Dask backend) its attempt and prefix."""
        conn.stream = stream
        conn.attempt = record
        if self.prefix:
            from agentos.workflows.parallel.terminal import item_prefix

            conn.prefix = item_prefix(record.item_id, self.terminal.colour)
            conn.newline_prefix = b"\n" + conn.prefix

    def external_data(self, item_id: str, attempt_no: int, stream: int, data: bytes) -> None:
        conn = self._external.get((item_id, attempt_no, stream))
        if conn is not None and data:
            self._feed(conn, data)

    def external_eof(self, item_id: str, attempt_no: int, stream: int) -> None:
        conn = self._external.pop((item_id, attempt_no, stream), None)
        if conn is not None:
            self._close(conn)

    def _log(self, attempt: _Attempt, block: bytes) -> None:
        """Append to the item's log. A log that cannot be written (disk full, run directory
        deleted) is reported once and given up; the item's output still reaches the terminal,
        and the listener must never die of it, or the workers would block on full sockets."""
        assert self.log_dir is not None
        path = self.log_dir / f"{attempt.item_id}.log"
        try:
            if attempt.log_fd < 0:
                attempt.log_fd = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644
                )
                # once per attempt, where its log is opened (on its first line, so a silent
                # attempt leaves no log): attempts of a retried item are told apart in the file
                started = time.time() - (time.monotonic() - attempt.started)
                os.write(attempt.log_fd, attempt_header(attempt.item_id, attempt.attempt, started))
            os.write(attempt.log_fd, block)
        except OSError as exc:
            if attempt.log_fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(attempt.log_fd)
            attempt.log_fd = _LOG_FAILED
            self.terminal.message(
                f"cannot write {path}: {exc.strerror}; {attempt.item_id}'s output goes on to the "
                "terminal only",
                force=True,
            )

    def _close(self, conn: _Conn, *, valid: bool = True) -> None:
        if conn.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
            conn.sock.close()
        if conn.pending_header:
            conn.pending_header = False
            with self._lock:
                self._headerless -= 1
        attempt = conn.attempt
        if attempt is None:
            return
        if conn.pending:
            pending, conn.pending = conn.pending, b""
            self._emit(conn, pending + b"\n")
        conn.attempt = None
        with self._lock:
            attempt.open_streams -= 1
            done = attempt.open_streams == 0
        if done:
            if attempt.log_fd >= 0:
                os.close(attempt.log_fd)
                attempt.log_fd = -1
            attempt.closed.set()
