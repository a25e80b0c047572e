"""The output listener, driven through its wire protocol by fake workers, and colours on a TTY."""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentos.workflows.parallel.credentials import Redactor, make_credentials
from agentos.workflows.parallel.output import MAX_LINE, OutputListener
from agentos.workflows.parallel.terminal import Terminal
from conftest import agentos_argv, clean_env, items_file


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


def connect(listener: OutputListener, item_id: str, stream: int, attempt: int = 1) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(listener.address)
    header = f"AGENTOS1 {listener.token} {stream} {attempt} {os.getpid()} {item_id}\n"
    sock.sendall(header.encode())
    return sock


def finish(*socks: socket.socket) -> None:
    for sock in socks:
        sock.shutdown(socket.SHUT_WR)
        sock.close()


def run_listener(captured: Captured, tmp_path: Path, **kw: object) -> OutputListener:
    listener = OutputListener(captured.terminal, tmp_path / "logs", **kw)  # type: ignore[arg-type]
    return listener.start()


def test_lines_are_prefixed_logged_and_partial_lines_terminated(
    captured: Captured, tmp_path: Path
) -> None:
    listener = run_listener(captured, tmp_path)
    out, err = connect(listener, "item-a", 1), connect(listener, "item-a", 2)
    out.sendall(b"one\ntw")
    err.sendall(b"warn\n")
    time.sleep(0.05)
    out.sendall(b"o\nno newline at the end")
    finish(out, err)
    assert listener.wait_closed("item-a", 1, timeout=5)
    listener.stop()
    captured.close()
    assert captured.out == b"[item-a] one\n[item-a] two\n[item-a] no newline at the end\n"
    assert captured.err == b"[item-a] warn\n"
    log = (tmp_path / "logs" / "item-a.log").read_bytes()
    assert sorted(log.splitlines()) == sorted([b"one", b"two", b"no newline at the end", b"warn"])


def test_two_items_never_share_a_line(captured: Captured, tmp_path: Path) -> None:
    listener = run_listener(captured, tmp_path)
    a = connect(listener, "a", 1)
    b = connect(listener, "b", 1)
    for k in range(200):  # both write half lines in turn
        a.sendall(f"a{k}-".encode())
        b.sendall(f"b{k}-".encode())
        a.sendall(b"end\n")
        b.sendall(b"end\n")
    finish(a, b, connect(listener, "a", 2), connect(listener, "b", 2))
    assert listener.wait_closed("a", 1, 5) and listener.wait_closed("b", 1, 5)
    listener.stop()
    captured.close()
    lines = captured.out.decode().splitlines()
    assert len(lines) == 400
    assert [x for x in lines if x.startswith("[a]")] == [f"[a] a{k}-end" for k in range(200)]
    assert [x for x in lines if x.startswith("[b]")] == [f"[b] b{k}-end" for k in range(200)]


def test_keys_are_redacted_in_output_and_logs(captured: Captured, tmp_path: Path) -> None:
    creds = make_credentials(["sk-secret-one-123456", "sk-secret-two-abcdef"])
    redactor = Redactor(creds)
    listener = run_listener(captured, tmp_path, redactor=redactor)
    out, err = connect(listener, "k", 1), connect(listener, "k", 2)
    out.sendall(b"token=sk-secret-one-123456 and sk-secret-two-abcdef\n")
    err.sendall(b"Authorization: Bearer sk-secret-two-abcdef")
    finish(out, err)
    listener.wait_closed("k", 1, 5)
    listener.stop()
    captured.close()
    everything = captured.out + captured.err + (tmp_path / "logs" / "k.log").read_bytes()
    assert b"sk-secret" not in everything
    assert b"[k] token=[key-1] and [key-2]\n" in captured.out
    assert captured.err == b"[k] Authorization: Bearer [key-2]\n"


def test_a_huge_line_without_newline_is_split_not_buffered_whole(
    captured: Captured, tmp_path: Path
) -> None:
    secret = "sk-" + "z" * 29
    redactor = Redactor(make_credentials([secret]))
    listener = run_listener(captured, tmp_path, redactor=redactor)
    listener.set_max_secret_length(redactor.max_length)
    out, err = connect(listener, "big", 1), connect(listener, "big", 2)
    # the key sits right across the first forced split point
    payload = b"x" * (MAX_LINE - 10) + secret.encode() + b"y" * (3 * MAX_LINE)
    sent = 0
    while sent < len(payload):
        sent += out.send(payload[sent : sent + 65536])
    finish(out, err)
    assert listener.wait_closed("big", 1, 10)
    listener.stop()
    captured.close()
    lines = captured.out.split(b"\n")[:-1]
    assert all(len(line) <= MAX_LINE + len(b"[big] ") for line in lines)
    assert len(lines) >= 4
    joined = b"".join(line.removeprefix(b"[big] ") for line in lines)
    assert secret.encode() not in joined and b"[key-1]" in joined
    assert joined == payload.replace(secret.encode(), b"[key-1]")


def test_wrong_token_is_refused(captured: Captured, tmp_path: Path) -> None:
    listener = run_listener(captured, tmp_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(listener.address)
    sock.sendall(b"AGENTOS1 wrong-token 1 1 1 intruder\nhello\n")
    sock.settimeout(5)
    assert sock.recv(10) == b""  # the listener hung up
    sock.close()
    listener.stop()
    captured.close()
    assert captured.out == b""


def run_on_tty(args: list[str], cwd: Path, **env: str) -> bytes:
    """Run agentos with stdout and stderr on a pseudo-terminal; return what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=clean_env(**env),
        close_fds=True,
    )
    os.close(follower)
    data = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(leader)
    return data


@pytest.mark.timeout(90)
def test_colours_only_on_a_tty_and_never_with_no_color(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["a", "b"])
    argv = agentos_argv("run", "-j", "2", "--items", str(items), "--", "echo", "hello")
    coloured = run_on_tty(argv, tmp_path)
    assert b"\x1b[" in coloured and b"hello a" in coloured
    assert b"2/2 [" in coloured and b"2 done, 0 failed, 0 running]" in coloured  # the bar
    assert b"\x1b[" not in run_on_tty(argv, tmp_path, NO_COLOR="1").replace(b"\x1b[?25", b"")
    plain = run_on_tty([*argv[:4], "--no-color", *argv[4:]], tmp_path)
    assert b"[item-1] hello a" in plain
