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
* Bulk, not per line: the listener handles whole chunks of complete lines with C-level bytes
  operations; per-line Python (or logging records, or a Manager queue) is several times slower.
* A partial line is held until its newline arrives (so lines of two items never mix), printed
  whole and terminated at EOF, and force-split at 1 MiB so an item printing 50 MB without a newline
  cannot exhaust the parent's memory.

Who may connect. The socket is an abstract Unix socket, which any local process can reach. A
connection is kept only if its peer (SO_PEERCRED) is this user and this process or one of its
descendants (a worker), and then only if its hello carries the run's token within
HELLO_TIMEOUT; anything else is closed at once, so neither another user nor a stray process can
hold descriptors or forge lines. Running out of descriptors (EMFILE) pauses accepting for a
moment instead of ending the listener. Output that could not be delivered whole to the
terminal (a stream dropped after an error, pipes that could not be received, the listener
itself failing) is recorded in `lost`, and the run then does not report success. A log that
cannot be written is said once and does not count: the output still reached the terminal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agentos.beneath import Beneath, UnsafePath
from agentos.engine.output.capture import MAGIC as _MAGIC
from agentos.engine.output.escape import escape_lines

if TYPE_CHECKING:  # the terminal (and colorama) is the parent's business, not the workers'
    from agentos.engine.output.terminal import Terminal

_READ_SIZE = 1024 * 1024
_SATURATED = 64 * 1024  # a read this large: the writer outruns us, no pause
_BATCH_WAIT = 0.002  # seconds a busy round waits for more output to gather (see the docstring)
_DRAIN_READS = 16  # reads of a pipe after its attempt ended (bounds a writer that never stops)
MAX_LINE = 1024 * 1024
_HEADER_LIMIT = 512
#: seconds a connection has to say its hello before it is closed
HELLO_TIMEOUT = 5.0
#: connections accepted but not yet authenticated; more are closed at once
_MAX_UNAUTHENTICATED = 32
#: after accept() failed for want of descriptors (EMFILE), how long to stop accepting: pending
#: connections wait in the backlog meanwhile, nothing is lost
_ACCEPT_PAUSE = 0.05
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_LOG_FAILED = -2  # log_fd of an attempt whose log could not be written

Redactor = Callable[[bytes], bytes]


def attempt_header(item_id: str, attempt: int, started: float) -> bytes:
    """The line that opens each attempt's part of `logs/<id>.log` (`agentos logs` shows it)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
    return f"==> {item_id} attempt {attempt}, started {when} <==\n".encode()


def new_listener_address() -> str:
    """An address for the listening socket: abstract on Linux (nothing to clean up), else a path
    in a private temporary directory."""
    if sys.platform.startswith("linux"):
        return "\0agentos-" + os.urandom(8).hex()
    import tempfile

    directory = tempfile.mkdtemp(prefix="agentos-")  # pragma: no cover
    return os.path.join(directory, "out.sock")  # pragma: no cover


def _peer(sock: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of a Unix socket's peer, from SO_PEERCRED; None where it is not available."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # pragma: no cover - not Linux
        return None
    try:
        pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return None
    return pid, uid


_GONE = -1


def _parent_pid(pid: int) -> int:
    """The parent of `pid`; _GONE when there is no such process, 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rpartition(b")")[2].split()[1])
    except FileNotFoundError:
        return _GONE
    except (OSError, IndexError, ValueError):
        return 0


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
    log_room: int = -1  # bytes the log may still take (--item-log-size); -1: no limit
    closed: threading.Event = field(default_factory=threading.Event)
    streams: list[_Stream] = field(default_factory=list)


@dataclass
class _Stream:
    """One output stream of one attempt: a pipe's read end, or fed from elsewhere (Dask)."""

    fd: int  # -1 for a stream fed by external_data
    stream: int = 0
    attempt: _Attempt | None = None
    pending: bytes = b""
    prefix: bytes = b""
    newline_prefix: bytes = b""
    escape: bool = True  # control characters shown, not obeyed (escape.py)
    keep_sgr: bool = False


@dataclass
class _Control:
    """One worker's control connection: its hello, then a begin and an end per attempt."""

    sock: socket.socket
    buf: bytes = b""
    fds: list[int] = field(default_factory=list)  # received, not yet claimed by a begin
    pid: int = 0  # 0 until the hello was read and checked
    peer_pid: int = 0  # the connecting process, as the kernel tells it (SO_PEERCRED)
    current: _Attempt | None = None  # the attempt begun and not yet ended
    deadline: float = 0.0  # monotonic time by which the hello must have come


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
        self.log_limit = log_limit  # bytes of each item's log (--item-log-size)
        self.log_dir = log_dir
        self.prefix = prefix
        self.redactor = redactor
        self.on_started = on_started
        self.address = new_listener_address()
        # what secrets.token_hex does, without importing secrets (and hmac, and OpenSSL with it)
        self.token = os.urandom(16).hex()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        self._server.listen(128)
        self._server.setblocking(False)
        # everything; and the quick one without the pipes, for the batching pause and settle()
        self._selector = selectors.DefaultSelector()
        self._quick = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        for selector in (self._selector, self._quick):
            selector.register(self._server, selectors.EVENT_READ, None)
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._open_streams = 0  # pipes registered with the selector
        self._settle_waiters: list[threading.Event] = []
        self._external: dict[tuple[str, int, int], _Stream] = {}
        self._max_key = 0
        self._read_view = memoryview(bytearray(_READ_SIZE))  # see _read
        #: item id -> why some of its output did not reach the terminal or its log
        self.lost: dict[str, str] = {}
        self._pending_hellos: list[_Control] = []
        self._accept_paused_until = 0.0
        self._told: set[str] = set()  # notices given once per kind
        self._thread = threading.Thread(target=self._run, name="agentos-output", daemon=True)
        # the logs directory is held open and each log opened in it without following links:
        # an item (or whoever wrote in a reused run directory) may have planted one
        self._logs: Beneath | None = None
        if log_dir is not None:
            with Beneath(log_dir.parent, create=True) as run_dir:
                self._logs = run_dir.sub(log_dir.name, create=True)

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
        """Read what open streams still hold (up to `drain_timeout`), then close them."""
        if self._stopping:
            return  # already stopped
        self._stopping = True
        self._drain_deadline = time.monotonic() + drain_timeout
        self._wake()
        if self.started:
            self._thread.join(timeout=drain_timeout + 2.0)
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, _Stream):
                self._close_stream(key.data)
            elif isinstance(key.data, _Control):
                self._close_control(key.data)
        self._selector.close()
        self._quick.close()
        self._server.close()
        if self._logs is not None:
            self._logs.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        with self._lock:
            waiters, self._settle_waiters = self._settle_waiters, []
        for waiter in waiters:
            waiter.set()
        if not self.address.startswith("\0"):  # pragma: no cover - non-Linux socket file
            with contextlib.suppress(OSError):
                os.unlink(self.address)
                os.rmdir(os.path.dirname(self.address))

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
                if not self._accept_paused_until:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_ACCEPT_PAUSE)
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
                    if isinstance(key.data, _Stream):
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
            self._accept()
        elif data == "wake":
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 64)
            if self._settle_waiters:
                self._settle()
            if self._stopping and not self._open_streams:
                return True
        elif isinstance(data, _Control):
            self._control_guarded(data)
        return False

    def _settle(self) -> None:
        """Read every connection and control message already waiting, then answer settle()."""
        if self._accept_paused_until:  # try now rather than after the pause
            self._accept_paused_until = 0.0
            for selector in (self._selector, self._quick):
                with contextlib.suppress(KeyError, ValueError):
                    selector.register(self._server, selectors.EVENT_READ, None)
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

    def _read_guarded(self, stream: _Stream) -> int:
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

    def _read(self, stream: _Stream) -> int:
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
        self._feed(stream, bytes(self._read_view[:size]))
        return size

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_DESCRIPTORS:
                    raise
                self._pause_accepting(exc)
                return
            peer = _peer(sock)
            if peer is None or not self._is_ours(*peer):
                sock.close()
                self._tell_once(
                    "stranger",
                    "refused a connection to the output socket from "
                    + (f"pid {peer[0]} (uid {peer[1]})" if peer else "an unknown peer")
                    + ": not a process of this run",
                )
                continue
            if len(self._pending_hellos) >= _MAX_UNAUTHENTICATED:
                sock.close()
                continue
            sock.setblocking(False)
            control = _Control(sock, peer_pid=peer[0], deadline=time.monotonic() + HELLO_TIMEOUT)
            self._pending_hellos.append(control)
            for selector in (self._selector, self._quick):
                selector.register(sock, selectors.EVENT_READ, control)

    def _is_ours(self, pid: int, uid: int) -> bool:
        """The peer is this user's, and this process or a descendant of it (a worker, or a
        process a worker forked). A peer already gone (a worker that began an attempt and
        died before we accepted, under load) is let in: its connection holds only what it
        sent, which still needs the run's token, and its attempt must be known as begun."""
        if uid != os.getuid():
            return False
        me = os.getpid()
        for depth in range(64):  # the chain up to us is short; a loop in /proc data is not
            if pid == me:
                return True
            if pid <= 1:
                return False
            parent = _parent_pid(pid)
            if parent == _GONE:
                return depth == 0
            pid = parent
        return False

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors: stop watching the listening socket for a moment (it would be
        ready again at once, a busy loop); pending connections wait in its backlog."""
        self._tell_once(
            "descriptors",
            f"out of file descriptors ({exc.strerror}); waiting for some to be freed "
            "before taking more worker connections",
        )
        for selector in (self._selector, self._quick):
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(self._server)
        self._accept_paused_until = time.monotonic() + _ACCEPT_PAUSE

    def _housekeeping(self) -> float | None:
        """Close connections whose hello is late, resume accepting after a pause; the time
        until the next such event (None: nothing pending)."""
        if not self._pending_hellos and not self._accept_paused_until:
            return None  # the usual case, once per wake-up of a busy loop
        now = time.monotonic()
        next_due: float | None = None
        if self._accept_paused_until:
            if now >= self._accept_paused_until:
                self._accept_paused_until = 0.0
                for selector in (self._selector, self._quick):
                    with contextlib.suppress(KeyError, ValueError):
                        selector.register(self._server, selectors.EVENT_READ, None)
            else:
                next_due = self._accept_paused_until
        waiting = []
        for control in self._pending_hellos:
            if control.pid or control.sock.fileno() < 0:
                continue  # authenticated, or closed
            if now >= control.deadline:
                self._close_control(control)
                continue
            waiting.append(control)
            next_due = control.deadline if next_due is None else min(next_due, control.deadline)
        self._pending_hellos = waiting
        return None if next_due is None else max(0.0, next_due - now)

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
    def _control_guarded(self, control: _Control) -> None:
        try:
            self._control_read(control)
        except Exception as exc:
            self.terminal.message(
                f"dropped a worker connection after an error: {exc!r}", force=True
            )
            with contextlib.suppress(Exception):
                self._close_control(control)

    def _control_read(self, control: _Control) -> None:
        try:
            data, fds, flags, _ = socket.recv_fds(control.sock, 4096, 8)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds, flags = b"", [], 0
        control.fds.extend(fds)
        if flags & socket.MSG_CTRUNC:
            # the attempt's pipes did not arrive (out of descriptors): its output is lost
            for line in data.split(b"\n"):
                kind, _, rest = line.partition(b" ")
                if kind == b"S":
                    item = rest.partition(b" ")[2].decode(errors="replace")
                    self.mark_lost(item, "its output pipes could not be received")
            self._close_control(control)
            return
        if not data:
            self._close_control(control)
            return
        control.buf += data
        while True:
            end = control.buf.find(b"\n")
            if end < 0:
                break
            line, control.buf = control.buf[:end], control.buf[end + 1 :]
            if not self._control_line(control, line):
                self._close_control(control)
                return
        if len(control.buf) > _HEADER_LIMIT:
            self._close_control(control)

    def _control_line(self, control: _Control, line: bytes) -> bool:
        """Act on one line; False for anything an agentos worker would not send."""
        if not control.pid:  # the hello: "AGENTOS2 <token> <pid>"
            parts = line.split(b" ")
            if len(parts) != 3 or parts[0] != _MAGIC or parts[1] != self.token.encode():
                return False
            pid = int(parts[2]) if parts[2].isdigit() else 0
            if pid <= 0 or pid != control.peer_pid:
                return False
            control.pid = pid
            return True
        kind, _, rest = line.partition(b" ")
        number, _, name = rest.partition(b" ")
        if not number.isdigit() or not name:
            return False
        item_id, attempt_no = name.decode(errors="replace"), int(number)
        if kind == b"S":
            if len(control.fds) < 2 or control.current is not None:
                return False
            out_fd, err_fd = control.fds.pop(0), control.fds.pop(0)
            self._begin(control, item_id, attempt_no, out_fd, err_fd)
            return True
        if kind == b"E":
            record, control.current = control.current, None
            if record is not None and (record.item_id, record.attempt) == (item_id, attempt_no):
                self._end(record)
            return True
        return False

    def _begin(
        self, control: _Control, item_id: str, attempt_no: int, out_fd: int, err_fd: int
    ) -> None:
        record = _Attempt(item_id, attempt_no, control.pid, time.monotonic())
        with self._lock:
            self._attempts[(item_id, attempt_no)] = record
        control.current = record
        for stream_no, fd in ((1, out_fd), (2, err_fd)):
            os.set_blocking(fd, False)
            stream = _Stream(fd)
            self._attach(stream, record, stream_no)
            record.streams.append(stream)
            self._selector.register(fd, selectors.EVENT_READ, stream)
            self._open_streams += 1
        if self.on_started is not None:
            self.on_started(item_id, attempt_no, control.pid)

    def _end(self, record: _Attempt) -> None:
        """The worker let go of the attempt's pipes: what they hold is the rest of its output."""
        for stream in list(record.streams):
            if stream.attempt is None:
                continue  # already at EOF
            for _ in range(_DRAIN_READS):
                if self._read_guarded(stream) < _READ_SIZE:
                    break
            if stream.attempt is not None:
                self._close_stream(stream)

    def _close_control(self, control: _Control) -> None:
        """A worker's connection ends (it exited, or it sent nonsense). An attempt it had begun
        keeps its pipes: they end at EOF, when the worker and everything it started are gone."""
        for selector in (self._selector, self._quick):
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(control.sock)
        control.sock.close()
        for fd in control.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        control.fds = []
        control.current = None

    # -- the bytes
    def _feed(self, conn: _Stream, data: bytes) -> None:
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

    def _force_split(self, conn: _Stream, data: bytes) -> None:
        """A line longer than MAX_LINE: print it in MAX_LINE pieces. Keys are replaced first and
        the last (longest key - 1) bytes are held back, so a key cannot be cut in two."""
        if self.redactor is not None:
            data = self.redactor(data)
        split = len(data) - max(self._max_key - 1, 0)
        pieces = [data[i : min(i + MAX_LINE, split)] for i in range(0, split, MAX_LINE)]
        conn.pending = data[split:]
        self._emit(conn, b"\n".join(pieces) + b"\n")

    def _emit(self, conn: _Stream, block: bytes) -> None:
        """`block` is one or more complete lines, each ending in b"\\n"."""
        if self.redactor is not None:
            block = self.redactor(block)
        attempt = conn.attempt
        if attempt is not None and self.log_dir is not None and attempt.log_fd != _LOG_FAILED:
            self._log(attempt, block)  # the log keeps the raw bytes
        if conn.escape:
            block = escape_lines(block, keep_sgr=conn.keep_sgr)
        if conn.prefix:
            block = conn.prefix + block[:-1].replace(b"\n", conn.newline_prefix) + b"\n"
        self.terminal.write(conn.stream, block)

    # -- streams fed from elsewhere: the Dask backend forwards item output as events, which
    #    then take exactly the path pipe data takes (prefix, redaction, log file, EOF)
    def external_start(self, item_id: str, attempt_no: int, pid: int) -> None:
        with self._lock:
            if (item_id, attempt_no) in self._attempts:
                return
            self._attempts[(item_id, attempt_no)] = _Attempt(
                item_id, attempt_no, pid, time.monotonic()
            )
        for stream in (1, 2):
            conn = _Stream(-1)
            self._attach(conn, self._attempts[(item_id, attempt_no)], stream)
            self._external[(item_id, attempt_no, stream)] = conn
        if self.on_started is not None:
            self.on_started(item_id, attempt_no, pid)

    def _attach(self, conn: _Stream, record: _Attempt, stream: int) -> None:
        """Give a stream (a pipe, or one fed by the Dask backend) its attempt and prefix."""
        conn.stream = stream
        conn.attempt = record
        # Prefixed lines are for people (and `| tee` shows them on a terminal too): always
        # escaped. Unprefixed (sequential) output is the items' own bytes unless it goes to a
        # terminal. Colours stay where agentos shows its own.
        tty = self.terminal.out_is_tty if stream == 1 else self.terminal.err_is_tty
        conn.escape = self.prefix or tty
        conn.keep_sgr = tty and self.terminal.colour
        if self.prefix:
            from agentos.engine.output.terminal import item_prefix

            conn.prefix = item_prefix(record.item_id, self.terminal.colour)
            conn.newline_prefix = b"\n" + conn.prefix

    def external_data(self, item_id: str, attempt_no: int, stream: int, data: bytes) -> None:
        conn = self._external.get((item_id, attempt_no, stream))
        if conn is not None and data:
            self._feed(conn, data)

    def external_eof(self, item_id: str, attempt_no: int, stream: int) -> None:
        conn = self._external.pop((item_id, attempt_no, stream), None)
        if conn is not None:
            self._close_stream(conn)

    def _log(self, attempt: _Attempt, block: bytes) -> None:
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
                if self.log_limit is not None:
                    attempt.log_room = max(0, self.log_limit - os.fstat(attempt.log_fd).st_size)
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

    def _cut_log(self, attempt: _Attempt, block: bytes) -> None:
        """The log reached --item-log-size: what fits (whole lines), a line saying so, and no
        more for this attempt. Its output still reaches the terminal."""
        keep = block[: block.rfind(b"\n", 0, attempt.log_room) + 1]
        os.write(attempt.log_fd, keep)
        os.write(
            attempt.log_fd,
            b"==> agentos: log cut at --item-log-size %d bytes; the rest went to the terminal "
            b"only <==\n" % (self.log_limit or 0),
        )
        os.close(attempt.log_fd)
        attempt.log_fd = _LOG_FAILED

    def _close_stream(self, conn: _Stream) -> None:
        if conn.fd >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.fd)
                self._open_streams -= 1
            os.close(conn.fd)
            conn.fd = -1
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
