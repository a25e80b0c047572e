"""The control connection a worker opens to the output listener, and who may open one.

A worker says, in lines (capture.py writes them):

    AGENTOS2 <token> <pid>          once: its hello, with the run's token
    S <attempt> <item id>           an attempt begins; its two pipes' read ends ride along
                                    (SCM_RIGHTS): stdout, then stderr
    E <attempt> <item id>           the attempt ended; the worker let go of its pipes

The socket is an abstract Unix socket, which any local process can reach. A connection is kept
only if its peer (SO_PEERCRED) is this user and this process or one of its descendants
(`is_ours`), and then only if its hello carries the run's token; anything an agentos worker
would not send ends the connection (`Nonsense`).

Runs on the listener's thread, parent side.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from agentos.engine.output.capture import MAGIC
from agentos.engine.output.lines import AttemptOutput

_HEADER_LIMIT = 512
_GONE = -1
#: connections accepted but not yet authenticated; more are closed at once
_MAX_UNAUTHENTICATED = 32
#: after accept() failed for want of descriptors (EMFILE), how long to stop accepting: pending
#: connections wait in the backlog meanwhile, nothing is lost
ACCEPT_PAUSE = 0.05
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

#: says a notice once per kind (kind, text)
Notice = Callable[[str, str], None]


def new_listener_address() -> str:
    """An address for the listening socket: abstract on Linux (nothing to clean up), else a path
    in a private temporary directory."""
    if sys.platform.startswith("linux"):
        return "\0agentos-" + os.urandom(8).hex()
    import tempfile

    directory = tempfile.mkdtemp(prefix="agentos-")  # pragma: no cover
    return os.path.join(directory, "out.sock")  # pragma: no cover


def peer_of(sock: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of a Unix socket's peer, from SO_PEERCRED; None where it is not available."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # pragma: no cover - not Linux
        return None
    try:
        pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return None
    return pid, uid


def _parent_pid(pid: int) -> int:
    """The parent of `pid`; _GONE when there is no such process, 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rpartition(b")")[2].split()[1])
    except FileNotFoundError:
        return _GONE
    except (OSError, IndexError, ValueError):
        return 0


def is_ours(pid: int, uid: int) -> bool:
    """The peer is this user's, and this process or a descendant of it (a worker, or a process
    a worker forked). A peer already gone (a worker that began an attempt and died before we
    accepted, under load) is let in: its connection holds only what it sent, which still needs
    the run's token, and its attempt must be known as begun."""
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


class Nonsense(Exception):
    """The peer sent what an agentos worker would not: its connection ends."""


class PipesLost(Exception):
    """An attempt's pipes did not arrive (the descriptors were cut: we are out of them)."""

    def __init__(self, items: list[str]) -> None:
        super().__init__(", ".join(items))
        self.items = items


class Begin(NamedTuple):
    """A worker's word that an attempt begins, with the two pipes its output comes on."""

    item_id: str
    attempt: int
    out_fd: int
    err_fd: int


class End(NamedTuple):
    """A worker's word that an attempt ended: its output closes at EOF."""

    record: AttemptOutput


@dataclass(eq=False)
class Control:
    """One worker's control connection: its hello, then a begin and an end per attempt."""

    sock: socket.socket
    buf: bytes = b""
    fds: list[int] = field(default_factory=list)  # received, not yet claimed by a begin
    pid: int = 0  # 0 until the hello was read and checked
    peer_pid: int = 0  # the connecting process, as the kernel tells it (SO_PEERCRED)
    current: AttemptOutput | None = None  # the attempt begun and not yet ended
    deadline: float = 0.0  # monotonic time by which the hello must have come

    def close(self, watchers: tuple[selectors.BaseSelector, ...]) -> None:
        """The connection ends (the worker exited, or it sent nonsense). An attempt it had
        begun keeps its pipes: they end at EOF, when the worker and all it started are gone."""
        for selector in watchers:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(self.sock)
        self.sock.close()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []
        self.current = None

    def receive(self) -> bytes | None:
        """What the worker sent since the last look (None: nothing yet; b"": it hung up), its
        descriptors kept in `fds`. Raises PipesLost, naming the items whose attempts began in
        what was cut."""
        try:
            data, fds, flags, _ = socket.recv_fds(self.sock, 4096, 8)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""
        self.fds.extend(fds)
        if flags & socket.MSG_CTRUNC:
            lost = []
            for line in data.split(b"\n"):
                kind, _, rest = line.partition(b" ")
                if kind == b"S":
                    lost.append(rest.partition(b" ")[2].decode(errors="replace"))
            raise PipesLost(lost)
        return data

    def messages(self, data: bytes, token: str) -> Iterator[Begin | End]:
        """The begins and ends in `data`, read on from what an earlier call left. A `Begin` must
        be made `current` by the caller before the next message is asked for. Raises Nonsense."""
        self.buf += data
        while True:
            end = self.buf.find(b"\n")
            if end < 0:
                break
            line, self.buf = self.buf[:end], self.buf[end + 1 :]
            if not self.pid:
                self._hello(line, token)
                continue
            message = self._message(line)
            if message is not None:
                yield message
        if len(self.buf) > _HEADER_LIMIT:
            raise Nonsense("a line too long")

    def _hello(self, line: bytes, token: str) -> None:
        parts = line.split(b" ")
        if len(parts) != 3 or parts[0] != MAGIC or parts[1] != token.encode():
            raise Nonsense("not the run's hello")
        pid = int(parts[2]) if parts[2].isdigit() else 0
        if pid <= 0 or pid != self.peer_pid:
            raise Nonsense("a hello in another process's name")
        self.pid = pid

    def _message(self, line: bytes) -> Begin | End | None:
        kind, _, rest = line.partition(b" ")
        number, _, name = rest.partition(b" ")
        if not number.isdigit() or not name:
            raise Nonsense("not a begin or an end")
        item_id, attempt_no = name.decode(errors="replace"), int(number)
        if kind == b"S":
            if len(self.fds) < 2 or self.current is not None:
                raise Nonsense("a begin without its pipes, or inside another attempt")
            return Begin(item_id, attempt_no, self.fds.pop(0), self.fds.pop(0))
        if kind == b"E":
            record, self.current = self.current, None
            if record is not None and (record.item_id, record.attempt) == (item_id, attempt_no):
                return End(record)
            return None
        raise Nonsense("not a begin or an end")


class Doorway:
    """The listening socket, watched by `watchers` (their key's data is None): who gets in, a
    hello that comes late (after `hello_timeout` seconds) closed, and a pause while we are out
    of descriptors."""

    def __init__(
        self, watchers: tuple[selectors.BaseSelector, ...], notice: Notice, hello_timeout: float
    ) -> None:
        self.address = new_listener_address()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.address)
        self.server.listen(128)
        self.server.setblocking(False)
        self.watchers = watchers
        self.notice = notice
        self.hello_timeout = hello_timeout
        self.pending: list[Control] = []  # accepted, their hello not read yet
        self.paused_until = 0.0  # monotonic time; 0.0: accepting
        for selector in watchers:
            selector.register(self.server, selectors.EVENT_READ, None)

    def accept(self) -> None:
        """Take every waiting connection of ours; each is watched with its `Control` as data."""
        while True:
            try:
                sock, _ = self.server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_DESCRIPTORS:
                    raise
                self._pause(exc)
                return
            peer = peer_of(sock)
            if peer is None or not is_ours(*peer):
                sock.close()
                self.notice(
                    "stranger",
                    "refused a connection to the output socket from "
                    + (f"pid {peer[0]} (uid {peer[1]})" if peer else "an unknown peer")
                    + ": not a process of this run",
                )
                continue
            if len(self.pending) >= _MAX_UNAUTHENTICATED:
                sock.close()
                continue
            sock.setblocking(False)
            deadline = time.monotonic() + self.hello_timeout
            control = Control(sock, peer_pid=peer[0], deadline=deadline)
            self.pending.append(control)
            for selector in self.watchers:
                selector.register(sock, selectors.EVENT_READ, control)

    def _pause(self, exc: OSError) -> None:
        """Out of descriptors: stop watching the listening socket for a moment (it would be
        ready again at once, a busy loop); pending connections wait in its backlog."""
        self.notice(
            "descriptors",
            f"out of file descriptors ({exc.strerror}); waiting for some to be freed "
            "before taking more worker connections",
        )
        for selector in self.watchers:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(self.server)
        self.paused_until = time.monotonic() + ACCEPT_PAUSE

    def resume(self) -> None:
        self.paused_until = 0.0
        for selector in self.watchers:
            with contextlib.suppress(KeyError, ValueError):
                selector.register(self.server, selectors.EVENT_READ, None)

    def housekeeping(self) -> float | None:
        """Close connections whose hello is late, resume accepting after a pause; the time
        until the next such event (None: nothing pending)."""
        if not self.pending and not self.paused_until:
            return None  # the usual case, once per wake-up of a busy loop
        now = time.monotonic()
        next_due: float | None = None
        if self.paused_until:
            if now >= self.paused_until:
                self.resume()
            else:
                next_due = self.paused_until
        waiting = []
        for control in self.pending:
            if control.pid or control.sock.fileno() < 0:
                continue  # authenticated, or closed
            if now >= control.deadline:
                control.close(self.watchers)
                continue
            waiting.append(control)
            next_due = control.deadline if next_due is None else min(next_due, control.deadline)
        self.pending = waiting
        return None if next_due is None else max(0.0, next_due - now)

    def close(self) -> None:
        self.server.close()
        if not self.address.startswith("\0"):  # pragma: no cover - non-Linux socket file
            with contextlib.suppress(OSError):
                os.unlink(self.address)
                os.rmdir(os.path.dirname(self.address))
