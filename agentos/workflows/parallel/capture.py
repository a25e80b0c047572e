"""Worker side of item output: fds 1 and 2 of this process go to the parent's listener for the
duration of one item attempt. See output.py for the whole picture and why it works this way.

Runs inside workers: imports nothing of the CLI, nothing of the parent's terminal.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys

MAGIC = b"AGENTOS1"  # first word of the header each connection starts with


class ItemCapture:
    """Redirect this process's fds 1 and 2 to the listener for one item attempt.

    Used as a context manager around `execute_item`; restores the previous fds on exit.
    """

    def __init__(self, address: str, token: str, item_id: str, attempt: int) -> None:
        self._address = address
        self._token = token
        self._item_id = item_id
        self._attempt = attempt
        self._socks: list[socket.socket] = []
        self._saved: list[int] = []

    def __enter__(self) -> ItemCapture:
        _flush_std_streams()
        pid = os.getpid()
        try:
            for stream in (1, 2):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._socks.append(sock)
                sock.connect(self._address)
                header = f"{self._token} {stream} {self._attempt} {pid} {self._item_id}\n"
                sock.sendall(MAGIC + b" " + header.encode())
            for stream, sock in zip((1, 2), self._socks, strict=True):
                self._saved.append(os.dup(stream))
                os.dup2(sock.fileno(), stream)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        _flush_std_streams()
        for stream, saved in zip((1, 2), self._saved, strict=False):  # fewer if __enter__ failed
            os.dup2(saved, stream)
            os.close(saved)
        self._saved = []
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            sock.close()
        self._socks = []


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
