"""Worker side of item output: fds 1 and 2 of this process go into two fresh pipes for the
duration of one item attempt, whose read ends the parent's listener holds. See output.py for the
whole picture and why it works this way.

Runs inside workers: imports nothing of the CLI, nothing of the parent's terminal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys

MAGIC = b"AGENTOS2"  # first word of the hello line each control connection starts with
# A pipe this large lets a writer run ahead while the listener batches its wake-ups (see
# output.py); the kernel allocates its pages only as they fill. Linux only, best effort.
PIPE_SIZE = 1024 * 1024


class OutputChannel:
    """This process's control connection to the listener: one per process, made on first use,
    carrying one `begin` (with the attempt's pipe read ends) and one `end` per attempt."""

    def __init__(self, address: str, token: str) -> None:
        self._address = address
        self._token = token
        self._sock: socket.socket | None = None
        self._pid = 0

    def _connected(self) -> socket.socket:
        pid = os.getpid()
        if self._sock is not None and self._pid != pid:
            # a forked child must not talk on its parent's connection: the listener knows
            # a connection by the pid that said hello on it
            self._sock.close()  # our copy only: close() does not shut the parent's down
            self._sock = None
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self._address)
                sock.sendall(b"%s %s %d\n" % (MAGIC, self._token.encode(), pid))
            except BaseException:
                sock.close()
                raise
            self._sock, self._pid = sock, pid
        return self._sock

    def begin(self, item_id: str, attempt: int) -> tuple[int, int]:
        """Open the attempt's two streams; returns the write ends (stdout, stderr), which the
        caller owns. The read ends travel to the listener with the `S` line."""
        sock = self._connected()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            for fd in (out_w, err_w):
                _widen(fd)
            socket.send_fds(sock, [b"S %d %s\n" % (attempt, item_id.encode())], [out_r, err_r])
        except BaseException:
            os.close(out_w)
            os.close(err_w)
            raise
        finally:
            os.close(out_r)
            os.close(err_r)
        return out_w, err_w

    def end(self, item_id: str, attempt: int) -> None:
        """Everything this attempt wrote is in its pipes: the listener reads what they hold and
        closes them (a leftover process that writes later gets EPIPE, never another item's
        output)."""
        if self._sock is None or self._pid != os.getpid():
            return
        with contextlib.suppress(OSError):  # the listener is gone: nothing left to tell
            self._sock.sendall(b"E %d %s\n" % (attempt, item_id.encode()))

    def close(self) -> None:
        if self._sock is not None and self._pid == os.getpid():
            self._sock.close()
        self._sock = None


def _widen(fd: int) -> None:
    setter = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setter is not None:
        with contextlib.suppress(OSError):  # over the user's pipe quota: the default is fine
            fcntl.fcntl(fd, setter, PIPE_SIZE)


class ItemCapture:
    """Redirect this process's fds 1 and 2 into the attempt's pipes for one item attempt.

    Used as a context manager around `execute_item`; restores the previous fds on exit.
    """

    def __init__(self, channel: OutputChannel, item_id: str, attempt: int) -> None:
        self._channel = channel
        self._item_id = item_id
        self._attempt = attempt
        self._saved: list[int] = []
        self._begun = False

    def __enter__(self) -> ItemCapture:
        _flush_std_streams()
        out_w, err_w = self._channel.begin(self._item_id, self._attempt)
        self._begun = True
        try:
            for stream, fd in ((1, out_w), (2, err_w)):
                self._saved.append(os.dup(stream))
                os.dup2(fd, stream)
        except BaseException:
            self._restore()
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        _flush_std_streams()
        for stream, saved in zip((1, 2), self._saved, strict=False):  # fewer if __enter__ failed
            os.dup2(saved, stream)
            os.close(saved)
        self._saved = []
        if self._begun:
            self._begun = False
            self._channel.end(self._item_id, self._attempt)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
