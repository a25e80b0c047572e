"""The output listener, driven through its wire protocol by fake workers, and colours on a TTY."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest.mock import ANY

import pytest

from agentos.engine.output.capture import OutputChannel
from agentos.engine.output.listener import MAX_LINE, OutputListener
from agentos.engine.output.terminal import Terminal
from agentos.governor.credentials import Redactor, make_credentials
from conftest import agentos_argv, clean_env, items_file, run


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


def test_lines_are_prefixed_logged_and_partial_lines_terminated(
    captured: Captured, tmp_path: Path
) -> None:
    listener = run_listener(captured, tmp_path)
    worker = FakeAttempt(listener, "item-a")
    out, err = worker.out, worker.err
    out.sendall(b"one\ntw")
    err.sendall(b"warn\n")
    time.sleep(0.05)
    out.sendall(b"o\nno newline at the end")
    worker.finish()
    assert listener.wait_closed("item-a", 1, timeout=5)
    listener.stop()
    captured.close()
    assert captured.out == b"[item-a] one\n[item-a] two\n[item-a] no newline at the end\n"
    assert captured.err == b"[item-a] warn\n"
    header, *log = (tmp_path / "logs" / "item-a.log").read_bytes().splitlines()
    assert header.startswith(b"==> item-a attempt 1, started ") and header.endswith(b" <==")
    assert sorted(log) == sorted([b"one", b"two", b"no newline at the end", b"warn"])


def test_two_items_never_share_a_line(captured: Captured, tmp_path: Path) -> None:
    listener = run_listener(captured, tmp_path)
    wa, wb = FakeAttempt(listener, "a"), FakeAttempt(listener, "b")
    a, b = wa.out, wb.out
    for k in range(200):  # both write half lines in turn
        a.sendall(f"a{k}-".encode())
        b.sendall(f"b{k}-".encode())
        a.sendall(b"end\n")
        b.sendall(b"end\n")
    wa.finish()
    wb.finish()
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
    worker = FakeAttempt(listener, "k")
    worker.out.sendall(b"token=sk-secret-one-123456 and sk-secret-two-abcdef\n")
    worker.err.sendall(b"Authorization: Bearer sk-secret-two-abcdef")
    worker.finish()
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
    worker = FakeAttempt(listener, "big")
    # the key sits right across the first forced split point, and arrives in pieces
    payload = b"x" * (MAX_LINE - 10) + secret.encode() + b"y" * (3 * MAX_LINE)
    for start in range(0, len(payload), 65536):
        worker.out.sendall(payload[start : start + 65536])
    worker.finish()
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
    sock.sendall(b"AGENTOS2 wrong-token 1\nS 1 intruder\n")
    sock.settimeout(5)
    assert sock.recv(10) == b""  # the listener hung up
    sock.close()
    listener.stop()
    captured.close()
    assert captured.out == b""


def test_the_end_marker_completes_an_attempt_a_leftover_writer_still_holds(
    captured: Captured, tmp_path: Path
) -> None:
    """A daemon the item left behind keeps its stdout: the attempt still ends at the worker's
    marker with every line written before it, and the daemon's late write fails (EPIPE) rather
    than landing in anyone's output."""
    listener = run_listener(captured, tmp_path)
    worker = FakeAttempt(listener, "first")
    leftover = os.dup(worker.out.fd)
    lines = b"".join(b"line %d\n" % n for n in range(20_000))  # more than a default pipe holds
    writer = threading.Thread(target=worker.out.sendall, args=(lines,))
    writer.start()
    writer.join(timeout=10)
    worker.finish()
    assert listener.wait_closed("first", 1, timeout=5)
    with pytest.raises(BrokenPipeError):
        os.write(leftover, b"late\n")
    os.close(leftover)
    second = FakeAttempt(listener, "second")
    second.out.sendall(b"mine\n")
    second.finish()
    assert listener.wait_closed("second", 1, timeout=5)
    listener.stop()
    captured.close()
    got = captured.out.splitlines()
    assert [x for x in got if x.startswith(b"[first] ")] == [
        b"[first] " + x for x in lines.splitlines()
    ]
    assert [x for x in got if not x.startswith(b"[first] ")] == [b"[second] mine"]


def test_settle_learns_attempts_a_dead_worker_began(captured: Captured, tmp_path: Path) -> None:
    """After a worker death the controller asks which attempts had begun: settle() must read
    the begin messages still waiting, even of connections not accepted yet."""
    listener = run_listener(captured, tmp_path)
    workers = [FakeAttempt(listener, f"w{n}") for n in range(5)]
    listener.settle(timeout=5)
    assert all(listener.running_pid(f"w{n}", 1) == (os.getpid(), ANY) for n in range(5))
    for worker in workers:
        worker.finish()
    listener.stop()
    captured.close()


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


# -- the progress bar in a real terminal

BAR = re.compile(r"\d+/\d+\b.*\b(\d+) done, (\d+) failed, (\d+) running")
GATED = 'echo started "$0"; while [ ! -e "gate-$0" ]; do sleep 0.05; done'


class Tmux:
    """A tmux server of this test's own (its own socket, no config), one detached session."""

    def __init__(self, workdir: Path, width: int, height: int) -> None:
        self.socket = str(workdir / "tmux.sock")
        self.workdir = workdir
        self.size = (width, height)

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, "-f", os.devnull, *args],
            cwd=self.workdir,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def start(self, command: str) -> None:
        width, height = self.size
        self("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)

    def screen(self) -> list[str]:
        """Every line of the pane, scrollback included, wrapped lines joined back together (so a
        line that wrapped shows up as longer than the width)."""
        return self("capture-pane", "-p", "-J", "-S", "-", "-t", "t").splitlines()

    def wait_for(
        self, check: Callable[[list[str]], bool], what: str, timeout: float = 30
    ) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if check(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never appeared:\n" + "\n".join(lines))
            time.sleep(0.05)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self("kill-server")


def bars(lines: list[str]) -> list[re.Match[str]]:
    return [m for line in lines if (m := BAR.search(line))]


@pytest.mark.timeout(120)
def test_progress_bar_fits_a_narrow_terminal_and_counts_what_runs(tmp_path: Path) -> None:
    """At 50 columns the bar used to wrap, leaving a stale copy in the scrollback at every redraw,
    and its running count was the number of attempts *submitted* (3 with -j2, one queued in a
    worker) or stale (0) while items printed."""
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux for a terminal of a known width: apt-get install -y tmux")
    width = 50
    items = items_file(tmp_path / "items.txt", ["a", "b", "c", "d"])
    argv = agentos_argv("run", "-j", "2", "--items", str(items), "--", "sh", "-c", GATED)
    # the pane's output is recorded from the first byte: agentos starts once `go` exists. Its
    # exit status is written down by the shell: tmux (3.3a) leaves #{pane_dead_status} empty
    # when the pane's terminal reaches EOF before tmux reaps the process, which is the order
    # when the process that exits is the terminal's last holder (as agentos is, now that no
    # resource tracker outlives it holding stderr)
    (tmp_path / "run.sh").write_text(
        'while [ ! -e go ]; do sleep 0.02; done\n"$@"\necho $? > status\n', encoding="utf-8"
    )
    tmux = Tmux(tmp_path, width, 30)
    try:
        tmux.start(shlex.join(["sh", "run.sh", *argv]))
        tmux("set-option", "-t", "t", "remain-on-exit", "on")
        tmux("pipe-pane", "-t", "t", "-o", "cat >> raw.log")
        (tmp_path / "go").touch()

        def showing(*started: str, done: int) -> Callable[[list[str]], bool]:
            def check(lines: list[str]) -> bool:
                shown = bars(lines)
                return all(any(f"started {s}" in line for line in lines) for s in started) and (
                    bool(shown) and shown[-1].group(1) == str(done)
                )

            return check

        for gate, started, done in ((None, "ab", 0), ("a", "abc", 1), ("b", "abcd", 2)):
            if gate:
                (tmp_path / f"gate-{gate}").touch()
            lines = tmux.wait_for(showing(*started, done=done), f"{done} done, items {started}")
            too_wide = [line for line in lines if len(line.rstrip()) > width - 1]
            assert too_wide == [], "\n".join(lines)
            # one bar on the screen, redrawn in place: no stale copies above it
            assert len(bars(lines)) == 1, "\n".join(lines)
            # two running (a third is queued in a worker), once their first lines are out
            tmux.wait_for(
                lambda ls: bool(shown := bars(ls)) and shown[-1].group(3) == "2", "2 running"
            )

        for gate in "cd":
            (tmp_path / f"gate-{gate}").touch()
        tmux.wait_for(
            lambda _: tmux("display", "-p", "-t", "t", "#{pane_dead}").strip() == "1",
            "the end of the run",
        )
        status = (tmp_path / "status").read_text().strip()
        lines = tmux.screen()
    finally:
        for gate in "abcd":
            (tmp_path / f"gate-{gate}").touch()
        tmux.kill()
    assert status == "0", "\n".join(lines)
    assert "4 items: 4 done" in "\n".join(lines)
    assert bars(lines) == []  # the bar went with the run, and left no copies in the scrollback
    # every drawing of the bar, as it was sent: never more running than -j2 allows
    raw = (tmp_path / "raw.log").read_bytes().decode(errors="replace")
    drawn = [int(m.group(3)) for m in bars(re.split(r"[\r\n]", raw))]
    assert drawn and max(drawn) == 2, drawn


def test_status_line_counts_only_running_attempts(tmp_path: Path) -> None:
    """Off a TTY the status line said "3 running" with -j2: the attempt queued in a worker behind
    a running one was counted as running."""
    items = items_file(tmp_path / "items.txt", ["0.2", "0.6", "0.4", "0.2", "0.3"])
    done = run(
        agentos_argv("run", "-j", "2", "--items", str(items), "--", "sh", "-c", 'sleep "$0"'),
        cwd=tmp_path,
        env=clean_env(AGENTOS_STATUS_INTERVAL="0.05"),
    )
    assert done.returncode == 0, done.stderr
    running = [
        int(m.group(1))
        for m in re.finditer(
            r"^\[agentos\] \d/5 done, \d failed, (\d+) running$", done.stderr, re.M
        )
    ]
    assert running and max(running) == 2, done.stderr
