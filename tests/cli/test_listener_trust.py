"""The output listener's socket can be reached by any local process: only the run's own
processes are served, a silent connection is dropped, running out of descriptors does not end
it, and a run whose output was lost does not report success."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.listener import Captured, FakeAttempt, run_listener
from support.processes import REPO, Live, agentos_argv, clean_env, items_file

from agentos.engine.output import listener as output
from agentos.engine.output.listener import OutputListener


def listener_address(pid: int) -> bytes:
    """The abstract address of the output socket that process `pid` listens on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}") if fd.isdigit() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open("/proc/net/unix") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[6] in inodes and fields[7].startswith("@agentos-"):
                return b"\0" + fields[7][1:].encode()
    raise AssertionError(f"no agentos output socket among the descriptors of {pid}")


SLOW_LINES = 'for n in 1 2 3 4 5 6; do echo "$0 line $n"; sleep 0.3; done'


def test_a_silent_connection_is_dropped_after_the_hello_timeout(
    captured: Captured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "HELLO_TIMEOUT", 0.3)
    listener = run_listener(captured, tmp_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(listener.address)
    sock.settimeout(5)
    started = time.monotonic()
    assert sock.recv(10) == b""  # hung up, without a word from us
    assert time.monotonic() - started < 3
    sock.close()
    # a worker that does say hello is still served
    worker = FakeAttempt(listener, "fine")
    worker.out.sendall(b"hello\n")
    worker.finish()
    assert listener.wait_closed("fine", 1, timeout=5)
    listener.stop()
    captured.close()
    assert captured.out == b"[fine] hello\n"


def test_an_output_stream_that_fails_is_recorded_as_lost(
    captured: Captured, tmp_path: Path
) -> None:
    def redactor(data: bytes) -> bytes:
        if b"boom" in data:
            raise RuntimeError("a bug")
        return data

    listener = run_listener(captured, tmp_path, redactor=redactor)
    worker = FakeAttempt(listener, "unlucky")
    worker.out.sendall(b"boom\n")
    worker.finish()
    assert listener.wait_closed("unlucky", 1, timeout=5)
    listener.stop()
    captured.close()
    assert listener.lost == {"unlucky": "an output stream failed (RuntimeError('a bug'))"}
    assert b"dropped an output stream" in captured.err


EMFILE_SCRIPT = textwrap.dedent(
    """
    import os, resource, sys, time
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from agentos.engine.output.capture import OutputChannel
    from agentos.engine.output.listener import OutputListener
    from agentos.engine.output.terminal import Terminal

    out = os.open({out!r}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    terminal = Terminal(fds=(out, out))
    listener = OutputListener(terminal, None).start()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    fillers = []
    try:
        while True:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    child = os.fork()
    if child == 0:  # a worker: it needs descriptors of its own to connect
        for fd in fillers[:16]:
            os.close(fd)
        channel = OutputChannel(listener.address, listener.token)
        out_w, err_w = channel.begin("late", 1)
        os.write(out_w, b"arrived\\n")
        os.close(out_w)
        os.close(err_w)
        channel.end("late", 1)
        time.sleep(5)  # a worker lives on: the listener checks that it is one of ours
        os._exit(0)
    time.sleep(0.5)  # the listener meets EMFILE on accept meanwhile
    for fd in fillers:
        os.close(fd)
    ok = listener.wait_closed("late", 1, timeout=5)
    os.kill(child, 9)
    os.waitpid(child, 0)
    print("alive" if listener._thread.is_alive() else "dead", ok, flush=True)
    listener.stop()
    terminal.close()
    """
)


def test_running_out_of_descriptors_pauses_accepting_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "terminal.txt"
    script = EMFILE_SCRIPT.format(repo=str(REPO), out=str(out))
    done = subprocess.run(
        [sys.executable, "-c", script], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["alive", "True"], out.read_text()
    text = out.read_text()
    assert "[late] arrived" in text
    assert text.count("out of file descriptors") == 1


def test_a_process_that_is_not_the_runs_is_hung_up_on(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["a", "b"])
    live = Live(
        agentos_argv("run", "-j", "2", "--items", str(items), "--", "sh", "-c", SLOW_LINES),
        tmp_path,
    )
    live.wait_for("a line 1")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(listener_address(live.pid))  # this test's process: the same user, not the run's
    sock.settimeout(3)
    try:
        assert sock.recv(10) == b""  # closed at once, before any hello
    finally:
        sock.close()
    done = live.finish()
    assert done.returncode == 0, done.stderr
    assert "refused a connection to the output socket from pid" in done.stderr
    assert done.stdout.count(" line ") == 12


FLOOD = textwrap.dedent(
    """
    import os, socket, sys, time
    os.setgid(65534); os.setgroups([]); os.setuid(65534)
    held = []
    for _ in range(200):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect(b"\\0" + sys.argv[1].encode())
        except OSError:
            s.close()
            continue
        held.append(s)
    print(len(held), flush=True)
    time.sleep(3)
    """
)


@pytest.mark.skipif(os.getuid() != 0, reason="acting as a second user needs root")
def test_another_user_cannot_silence_a_run(tmp_path: Path) -> None:
    """Another user floods the socket with connections while agentos runs with few
    descriptors: every line still arrives (it used to end the listener: 4 of 24 lines, exit 0)."""
    items = items_file(tmp_path / "items.txt", ["a", "b", "c", "d"])
    argv = agentos_argv("run", "-j", "2", "--items", str(items), "--", "sh", "-c", SLOW_LINES)
    live = Live(["sh", "-c", 'ulimit -n 64; exec "$@"', "sh", *argv], tmp_path)
    live.wait_for("a line 1")
    address = listener_address(live.pid)
    flood = subprocess.run(
        [sys.executable, "-c", FLOOD, address[1:].decode()],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert flood.returncode == 0, flood.stderr
    done = live.finish()
    assert done.returncode == 0, done.stderr
    for item in "abcd":
        assert [f"[item-{'abcd'.index(item) + 1}] {item} line {n}" for n in range(1, 7)] == [
            line
            for line in done.stdout.splitlines()
            if line.startswith(f"[item-{'abcd'.index(item) + 1}]")
        ]
    assert "refused a connection to the output socket from pid" in done.stderr
    assert "(uid 65534)" in done.stderr


def test_a_listener_that_fails_marks_the_open_attempts_lost(
    captured: Captured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = run_listener(captured, tmp_path)
    worker = FakeAttempt(listener, "cut")
    worker.out.sendall(b"first\n")
    time.sleep(0.2)

    def broken(self: OutputListener) -> float | None:
        raise RuntimeError("a bug in the loop")

    monkeypatch.setattr(OutputListener, "_housekeeping", broken)
    worker.out.sendall(b"second\n")  # wakes the loop, which now fails
    assert listener.wait_closed("cut", 1, timeout=5)  # nobody waits for what cannot come
    worker.finish()
    listener.stop()
    captured.close()
    assert listener.lost == {"cut": "the output listener failed (RuntimeError)"}
    assert b"output listener failed" in captured.err


def test_a_worker_gone_before_its_connection_is_accepted_is_still_heard(
    captured: Captured, tmp_path: Path
) -> None:
    """Under load a worker can begin an attempt and die (a segfault) before the listener
    accepts it: its attempt must still be known as begun, and what it wrote printed."""
    listener = OutputListener(captured.terminal, tmp_path / "logs")  # not reading yet
    child = os.fork()
    if child == 0:
        try:
            worker = FakeAttempt(listener, "short-lived")
            worker.out.sendall(b"last words\n")
            worker.finish()
        finally:
            os._exit(0)
    os.waitpid(child, 0)  # gone, and reaped: /proc knows it no more
    listener.start()
    listener.settle(5)
    assert listener.running_pid("short-lived", 1) is not None
    assert listener.wait_closed("short-lived", 1, timeout=5)
    listener.stop()
    captured.close()
    assert captured.out == b"[short-lived] last words\n"
