"""Item output: captured at the file-descriptor level in the worker (capture.py), prefixed in
the parent by the listener here.

    worker (one item at a time)                       parent: OutputListener thread
    ---------------------------                       ------------------------------
    once: connect the control socket, "AGENTOS2 token pid" ──► accept; the hello names the worker
    per attempt:
      pipe() x 2; "S attempt id" + both read ends ──────────► SCM_RIGHTS: the attempt's two pipes
      dup2(out_w, 1); dup2(err_w, 2)                          (the pipe *is* the attribution)
      execute_item: print(), logging, subprocesses  ═══════►  read up to 1 MiB per wake-up, cut at
        all write to fds 1/2: into the pipes       (pipes)    the last b"\n", redact keys, write
                                                              plain lines to logs/<id>.log, prefix
                                                              b"[<id>] " with one bytes.replace,
                                                              one write per block to the terminal
      flush; restore fds; "E attempt id" ──────────────────►  read what the pipes still hold, close
                                                              them: the item's output is complete
                                                              (the controller waits for it before
                                                              it records the attempt)

Why it is built this way:

* Replacing `sys.stdout` in a loky worker kills it (faulthandler is bound to fd 2) and misses the
  output of subprocesses, so capture is `os.dup2` onto fds 1 and 2.
* Fresh pipes per attempt, handed to the parent, instead of one pipe per worker with a reader that
  tags lines by "the current item": a line cannot be given to the wrong item, however late it is
  written. The end marker travels on the control socket after the worker let go of the pipes;
  the listener then drains and closes them, so a leftover background process that writes later
  gets EPIPE instead of writing into the next item's output.
* Pipes, not a socket per attempt and stream: many programs write one line per `write`
  (PYTHONUNBUFFERED=1), and a small write costs a Unix socket a whole buffer (an skb, ~1 KiB of
  its ~200 KiB budget), so the writer blocks every few hundred lines and the reader is woken for
  each few. A pipe packs small writes into its pages (widened to 1 MiB, see capture.PIPE_SIZE) and
  wakes its reader only when it was empty.
* Batched wake-ups: after a round that read something, the listener waits a moment (_BATCH_WAIT)
  on the control sockets only, so a busy writer fills its pipe instead of waking us per line;
  an attempt's end marker still cuts the wait short, so no item waits for its output to be
  counted. A round that found a pipe nearly full skips the wait.
* Bulk, not per line, and whole lines only: lines.py (prefix, redaction, logs, long lines).

Who may connect: control.py (the peer's credentials, the run's token, the protocol). A
connection whose hello does not come within HELLO_TIMEOUT is closed, so no stray process can
hold descriptors. Running out of descriptors (EMFILE) pauses accepting for a moment instead of
ending the listener. Output that could not be delivered whole to the terminal (a stream dropped
after an error, pipes that could not be received, the listener itself failing) is recorded in
`lost`, and the run then does not report success. A log that cannot be written is said once and
does not count: the output still reached the terminal.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agentos.engine.output.control import (
    ACCEPT_PAUSE,
    Begin,
    Control,
    Doorway,
    Nonsense,
    PipesLost,
)
from agentos.engine.output.lines import (
    MAX_LINE,
    AttemptOutput,
    LineRules,
    LineWriter,
    Redactor,
    Stream,
)

if TYPE_CHECKING:  # the terminal (and colorama) is the parent's business, not the workers'
    from agentos.engine.output.terminal import Terminal

__all__ = ["HELLO_TIMEOUT", "MAX_LINE", "OutputListener"]

_READ_SIZE = 1024 * 1024
_SATURATED = 64 * 1024  # a read this large: the writer outruns us, no pause
_BATCH_WAIT = 0.002  # seconds a busy round waits for more output to gather (see the docstring)
_DRAIN_READS = 16  # reads of a pipe after its attempt ended (bounds a writer that never stops)
#: seconds a connection has to say its hello before it is closed
HELLO_TIMEOUT = 5.0


StartedCallback = Callable[[str, int, int], None]


class OutputListener:
    """Accepts worker control connections and turns their attempts' pipes into prefixed lines
    and log files."""

    def __init__(
        self,
        terminal: Terminal,
        log_dir: Path | None,
        *,
        prefix: bool = True,
        redactor: Redactor | None = None,
        on_started: StartedCallback | None = None,
        log_limit: int | None = None,
    ) -> None:
        self.terminal = terminal
        self.lines = LineWriter(terminal, log_dir, LineRules(prefix, redactor, log_limit))
        self.on_started = on_started
        # what secrets.token_hex does, without importing secrets (and hmac, and OpenSSL with it)
        self.token = os.urandom(16).hex()
        # everything; and the quick one without the pipes, for the batching pause and settle()
        self._selector = selectors.DefaultSelector()
        self._quick = selectors.DefaultSelector()
        self._door = Doorway((self._selector, self._quick), self._tell_once, HELLO_TIMEOUT)
        self.address = self._door.address
        self._wake_r, self._wake_w = os.pipe()
        for selector in (self._selector, self._quick):
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._attempts: dict[tuple[str, int], AttemptOutput] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._open_streams = 0  # pipes registered with the selector
        self._settle_waiters: list[threading.Event] = []
        self._external: dict[tuple[str, int, int], Stream] = {}
        self._read_view = memoryview(bytearray(_READ_SIZE))  # see _read
        #: item id -> why some of its output did not reach the terminal or its log
        self.lost: dict[str, str] = {}
        self._told: set[str] = set()  # notices given once per kind
        self._thread = threading.Thread(target=self._run, name="agentos-output", daemon=True)

    def set_max_secret_length(self, length: int) -> None:
        """Force-split partial lines keeping this many bytes, so a key is never cut in two."""
        self.lines.max_key = length

    # -- lifecycle
    @property
    def started(self) -> bool:
        return self._thread.is_alive() or self._thread.ident is not None

    def start(self) -> OutputListener:
        self._thread.start()
        return self

    def stop(self, drain_timeout: float = 1.0) -> None:
        """Read what open streams still hold (up to `drain_timeout`), then close them."""
        if self._stopping:
            return  # already stopped
        self._stopping = True
        self._drain_deadline = time.monotonic() + drain_timeout
        self._wake()
        if self.started:
            self._thread.join(timeout=drain_timeout + 2.0)
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, Stream):
                self._close_stream(key.data)
            elif isinstance(key.data, Control):
                self._close_control(key.data)
        self._selector.close()
        self._quick.close()
        self.lines.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        with self._lock:
            waiters, self._settle_waiters = self._settle_waiters, []
        for waiter in waiters:
            waiter.set()
        self._door.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- queries from the controller thread
    def wait_closed(self, item_id: str, attempt: int, timeout: float) -> bool:
        """Wait until both output streams of this attempt are closed (all output is printed)."""
        with self._lock:
            record = self._attempts.get((item_id, attempt))
        if record is None:
            # its begin may still wait in a control socket (we read it late), or it never began
            # (the attempt failed before its capture started): read what is there, look again.
            # While accepting is paused for want of descriptors, its connection may still wait
            # in the backlog: look until it comes or the time is up.
            deadline = time.monotonic() + timeout
            while True:
                self.settle(min(max(0.0, deadline - time.monotonic()), 1.0))
                with self._lock:
                    record = self._attempts.get((item_id, attempt))
                if record is not None:
                    break
                if not self._door.paused_until:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(ACCEPT_PAUSE)
        ok = record.closed.wait(timeout)
        if ok:
            with self._lock:
                self._attempts.pop((item_id, attempt), None)
        return ok

    def settle(self, timeout: float) -> None:
        """Wait (up to `timeout`) until every control message already sent has been read, so
        `running_pid` knows every attempt that began. Used after workers died: what they sent is
        complete by then, only our reading may lag."""
        if not self._thread.is_alive():
            return
        done = threading.Event()
        with self._lock:
            self._settle_waiters.append(done)
        self._wake()
        done.wait(timeout)

    def running_pid(self, item_id: str, attempt: int) -> tuple[int, float] | None:
        """(worker pid, monotonic start) of an attempt whose output began."""
        with self._lock:
            record = self._attempts.get((item_id, attempt))
        return (record.pid, record.started) if record else None

    # -- the thread
    def _run(self) -> None:
        try:
            while True:
                timeout = self._housekeeping()
                if self._stopping:
                    timeout = max(0.0, self._drain_deadline - time.monotonic())
                    if timeout == 0.0:
                        return
                events = self._selector.select(timeout)
                if self._stopping and not events:
                    return
                gathered = saturated = False
                for key, _ in events:
                    if isinstance(key.data, Stream):
                        size = self._read_guarded(key.data)
                        gathered = gathered or size > 0
                        saturated = saturated or size >= _SATURATED
                    elif self._handle(key.data):
                        return
                if gathered and not saturated and not self._stopping:
                    # let busy writers fill their pipes instead of waking us per line; control
                    # messages (an attempt's end, a settle request) still cut the pause short
                    for key, _ in self._quick.select(_BATCH_WAIT):
                        if self._handle(key.data):
                            return
        except Exception as exc:  # a bug here must not hang the run, nor pass unnoticed
            self.terminal.message(f"output listener failed: {exc!r}", force=True)
            self._fail_all(f"the output listener failed ({type(exc).__name__})")

    def _handle(self, data: object) -> bool:
        """A ready non-stream object (the server, the wake pipe, a control connection); True
        when the listener should end."""
        if data is None:
            self._door.accept()
        elif data == "wake":
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 64)
            if self._settle_waiters:
                self._settle()
            if self._stopping and not self._open_streams:
                return True
        elif isinstance(data, Control):
            self._control_guarded(data)
        return False

    def _settle(self) -> None:
        """Read every connection and control message already waiting, then answer settle()."""
        if self._door.paused_until:  # try now rather than after the pause
            self._door.resume()
        for _ in range(1000):  # bounded: a worker that keeps beginning attempts cannot hold us
            ready = [key.data for key, _ in self._quick.select(0) if key.data != "wake"]
            if not ready:
                break
            for data in ready:
                self._handle(data)
        with self._lock:
            waiters, self._settle_waiters = self._settle_waiters, []
        for waiter in waiters:
            waiter.set()

    def _read_guarded(self, stream: Stream) -> int:
        """One stream's trouble stays that stream's: it is closed (so its writer gets EPIPE
        instead of blocking) and the listener goes on serving the others."""
        try:
            return self._read(stream)
        except Exception as exc:
            self.terminal.message(f"dropped an output stream after an error: {exc!r}", force=True)
            if stream.attempt is not None:
                self.mark_lost(stream.attempt.item_id, f"an output stream failed ({exc!r})")
            with contextlib.suppress(Exception):
                self._close_stream(stream)
            return 0

    def _read(self, stream: Stream) -> int:
        # Into one buffer kept for the listener's life, then a copy of what came: os.read()
        # allocates _READ_SIZE each time, which malloc maps and unmaps per read (2 000 of each
        # for one 20 000-line item), and an unmap in a threaded process interrupts the other
        # CPUs, where the items' writers run.
        try:
            size = os.readv(stream.fd, [self._read_view])
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            size = 0
        if not size:
            self._close_stream(stream)
            return 0
        self.lines.feed(stream, bytes(self._read_view[:size]))
        return size

    def _housekeeping(self) -> float | None:
        return self._door.housekeeping()

    def _tell_once(self, kind: str, text: str) -> None:
        if kind not in self._told:
            self._told.add(kind)
            self.terminal.message(text, force=True)

    def mark_lost(self, item_id: str, why: str) -> None:
        """Some of this item's output did not arrive whole (see the module docstring)."""
        self.lost.setdefault(item_id, why)

    def _fail_all(self, why: str) -> None:
        """The listener cannot go on: every attempt with open streams loses its output, and
        nobody must wait for it to close."""
        with self._lock:
            records = list(self._attempts.values())
        for record in records:
            if not record.closed.is_set():
                self.mark_lost(record.item_id, why)
                record.closed.set()

    # -- control connections
    def _control_guarded(self, control: Control) -> None:
        try:
            self._control_read(control)
        except Exception as exc:
            self.terminal.message(
                f"dropped a worker connection after an error: {exc!r}", force=True
            )
            with contextlib.suppress(Exception):
                self._close_control(control)

    def _control_read(self, control: Control) -> None:
        try:
            data = control.receive()
        except PipesLost as lost:
            for item in lost.items:
                self.mark_lost(item, "its output pipes could not be received")
            self._close_control(control)
            return
        if data is None:
            return
        if not data:
            self._close_control(control)
            return
        try:
            for message in control.messages(data, self.token):
                if isinstance(message, Begin):
                    control.current = self._begin(control.pid, message)
                else:
                    self._end(message.record)
        except Nonsense:
            self._close_control(control)

    def _begin(self, pid: int, begin: Begin) -> AttemptOutput:
        record = AttemptOutput(begin.item_id, begin.attempt, pid, time.monotonic())
        with self._lock:
            self._attempts[(begin.item_id, begin.attempt)] = record
        for stream_no, fd in ((1, begin.out_fd), (2, begin.err_fd)):
            os.set_blocking(fd, False)
            stream = Stream(fd)
            self.lines.attach(stream, record, stream_no)
            record.streams.append(stream)
            self._selector.register(fd, selectors.EVENT_READ, stream)
            self._open_streams += 1
        if self.on_started is not None:
            self.on_started(begin.item_id, begin.attempt, pid)
        return record

    def _end(self, record: AttemptOutput) -> None:
        """The worker let go of the attempt's pipes: what they hold is the rest of its output."""
        for stream in list(record.streams):
            if stream.attempt is None:
                continue  # already at EOF
            for _ in range(_DRAIN_READS):
                if self._read_guarded(stream) < _READ_SIZE:
                    break
            if stream.attempt is not None:
                self._close_stream(stream)

    def _close_control(self, control: Control) -> None:
        control.close((self._selector, self._quick))

    # -- streams fed from elsewhere: the Dask backend forwards item output as events, which
    #    then take exactly the path pipe data takes (prefix, redaction, log file, EOF)
    def external_start(self, item_id: str, attempt_no: int, pid: int) -> None:
        with self._lock:
            if (item_id, attempt_no) in self._attempts:
                return
            self._attempts[(item_id, attempt_no)] = AttemptOutput(
                item_id, attempt_no, pid, time.monotonic()
            )
        for stream in (1, 2):
            conn = Stream(-1)
            self.lines.attach(conn, self._attempts[(item_id, attempt_no)], stream)
            self._external[(item_id, attempt_no, stream)] = conn
        if self.on_started is not None:
            self.on_started(item_id, attempt_no, pid)

    def external_data(self, item_id: str, attempt_no: int, stream: int, data: bytes) -> None:
        conn = self._external.get((item_id, attempt_no, stream))
        if conn is not None and data:
            self.lines.feed(conn, data)

    def external_eof(self, item_id: str, attempt_no: int, stream: int) -> None:
        conn = self._external.pop((item_id, attempt_no, stream), None)
        if conn is not None:
            self._close_stream(conn)

    def _close_stream(self, conn: Stream) -> None:
        if conn.fd >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.fd)
                self._open_streams -= 1
            os.close(conn.fd)
            conn.fd = -1
        attempt = conn.attempt
        if attempt is None:
            return
        self.lines.flush(conn)
        conn.attempt = None
        with self._lock:
            attempt.open_streams -= 1
            done = attempt.open_streams == 0
        if done:
            self.lines.close_log(attempt)
            attempt.closed.set()
