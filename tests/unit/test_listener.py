"""The output listener, driven through its wire protocol by fake workers."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from unittest.mock import ANY

import pytest
from support.listener import Captured, FakeAttempt, run_listener

from agentos.engine.output.listener import MAX_LINE
from agentos.governor.credentials import Redactor, make_credentials


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
