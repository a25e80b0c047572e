"""The output listener driven through its wire protocol by fake workers: a terminal whose output
is read back (`captured`, a fixture), a fake worker's attempt."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos.engine.output.capture import OutputChannel
from agentos.engine.output.listener import OutputListener
from agentos.engine.output.terminal import Terminal


class Captured:
    """A Terminal whose stdout and stderr are pipes, read continuously by a thread like a real
    terminal would (a full pipe would block the listener)."""

    def __init__(self, colour: bool = False) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.terminal = Terminal(colour=colour, fds=(out_w, err_w))
        os.close(out_w)
        os.close(err_w)
        self._chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
        self._fds = (out_r, err_r)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        open_fds = list(self._fds)
        while open_fds:
            ready, _, _ = select.select(open_fds, [], [])
            for fd in ready:
                chunk = os.read(fd, 1 << 20)
                if chunk:
                    self._chunks[fd].append(chunk)
                else:
                    open_fds.remove(fd)

    def close(self) -> None:
        """Close the terminal (EOF for the reader) and collect everything it printed."""
        self.terminal.close()
        self._reader.join(timeout=10)
        self.out = b"".join(self._chunks[self._fds[0]])
        self.err = b"".join(self._chunks[self._fds[1]])
        for fd in self._fds:
            os.close(fd)


@pytest.fixture
def captured() -> Iterator[Captured]:
    cap = Captured()
    yield cap
    if cap.terminal.out_fd >= 0:
        cap.close()


class Pipe:
    """The write end of one stream of a fake worker's attempt."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]


class FakeAttempt:
    """A worker's side of one attempt, without the fd redirection: the real control connection
    and pipes (capture.OutputChannel), written to directly."""

    def __init__(self, listener: OutputListener, item_id: str, attempt: int = 1) -> None:
        self.channel = OutputChannel(listener.address, listener.token)
        self.item_id, self.attempt = item_id, attempt
        out_fd, err_fd = self.channel.begin(item_id, attempt)
        self.out, self.err = Pipe(out_fd), Pipe(err_fd)

    def finish(self) -> None:
        """Let go of the pipes, then send the end marker, as ItemCapture does."""
        for pipe in (self.out, self.err):
            os.close(pipe.fd)
        self.channel.end(self.item_id, self.attempt)
        self.channel.close()


def run_listener(captured: Captured, tmp_path: Path, **kw: object) -> OutputListener:
    listener = OutputListener(captured.terminal, tmp_path / "logs", **kw)  # type: ignore[arg-type]
    return listener.start()
