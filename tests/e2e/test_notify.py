"""`--notify URL`: a real agentos run notifying a loopback HTTP receiver through apprise's json://.

The URLs carry a password and a path token, as real ones do (a Slack webhook, an ntfy login):
every test that runs agentos checks that neither appears in its output or its run directory.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.processes import Finished, Live, agentos_argv, clean_env, items_file, only_run_dir, run

pytest.importorskip("apprise")


pytestmark = pytest.mark.timeout(90)

PASSWORD = "pw0Secret9"
PATH_TOKEN = "T0kenInPath42"
SLOW_ITEM = ["sh", "-c", "echo start $0; sleep 1.5; echo end $0"]


class Receiver:
    """A loopback HTTP server that keeps what is POSTed to it; `delay` makes it slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.messages: list[dict[str, Any]] = []
        self.release = threading.Event()  # ends a slow handler's wait at teardown
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if delay:
                    receiver.release.wait(delay)
                receiver.messages.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"json://agentos:{PASSWORD}@127.0.0.1:{port}/hook/{PATH_TOKEN}"

    def wait(self, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def closed_port_url() -> str:
    """A URL to a loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"json://agentos:{PASSWORD}@127.0.0.1:{port}/hook/{PATH_TOKEN}"


def assert_no_secret(done: Finished, workdir: Path) -> None:
    texts = {"stdout": done.stdout, "stderr": done.stderr}
    runs = workdir / ".agentos" / "runs"
    if runs.exists():
        for path in runs.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_text(errors="replace")
    for where, text in texts.items():
        for secret in (PASSWORD, PATH_TOKEN, "127.0.0.1:"):
            assert secret not in text, f"{secret!r} in {where}"


def notify_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "notification" in line]


def test_a_done_run_notifies_with_its_counts(workdir: Path, receiver: Receiver) -> None:
    items = items_file(workdir / "items.txt", ["a", "b", "c"])
    done = run(
        agentos_argv("run", "--items", str(items), "--notify", receiver.url, "--", "true"),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    [msg] = receiver.wait()
    assert msg["title"] == "agentos run: done"
    body = msg["message"]
    assert "3 items: 3 done" in body  # the summary line
    assert "counts: 3 done" in body
    assert "duration: " in body
    assert f"run dir: {only_run_dir(workdir).resolve()} on " in body
    assert "exit code: 0" in body
    assert notify_lines(done.stderr) == []
    assert_no_secret(done, workdir)


def test_urls_from_the_environment_stay_off_the_command_line(
    workdir: Path, receiver: Receiver
) -> None:
    items = items_file(workdir / "items.txt", ["a"])
    done = run(
        agentos_argv("run", "--items", str(items), "--", "true"),
        cwd=workdir,
        env=clean_env(AGENTOS_NOTIFY=receiver.url),
    )
    assert done.returncode == 0, done.stderr
    [msg] = receiver.wait()
    assert msg["title"] == "agentos run: done"
    assert json.loads((only_run_dir(workdir) / "run.json").read_text())["options"]["notify"] == 1
    assert_no_secret(done, workdir)


def test_failed_items_are_counted_and_the_exit_code_kept(workdir: Path, receiver: Receiver) -> None:
    items = items_file(workdir / "items.txt", ["1", "2", "3"])
    argv = ["run", "-j", "2", "--retries", "0", "--items", str(items), "--notify", receiver.url]
    done = run(agentos_argv(*argv, "--", "sh", "-c", 'test "$0" != 2'), cwd=workdir)
    assert done.returncode == 1, done.stderr
    [msg] = receiver.wait()
    assert msg["title"] == "agentos run: finished with failures"
    assert "counts: 2 done, 1 failed" in msg["message"]
    assert_no_secret(done, workdir)


def test_a_ctrl_c_run_notifies_how_it_stopped(workdir: Path, receiver: Receiver) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(6)])
    argv = agentos_argv("run", "-j", "2", "--items", str(items), "--notify", receiver.url)
    live = Live([*argv, "--", *SLOW_ITEM], workdir)
    live.wait_for("start", count=2)
    live.interrupt(signal.SIGINT)
    done = live.finish(timeout=30)
    assert done.returncode == 130, done.stderr
    [msg] = receiver.wait()
    assert msg["title"] == "agentos run: stopped by SIGINT"
    assert "counts: 2 done, 4 not run" in msg["message"]
    assert "stopped by SIGINT; to resume: agentos run --resume " in msg["message"]
    assert "exit code: 130" in msg["message"]
    assert_no_secret(done, workdir)


def test_a_receiver_that_is_down_is_one_warning(workdir: Path, receiver: Receiver) -> None:
    items = items_file(workdir / "items.txt", ["a", "b"])
    argv = ["run", "--items", str(items), "--notify", closed_port_url()]
    argv += ["--notify", receiver.url]
    done = run(agentos_argv(*argv, "--", "false"), cwd=workdir)
    assert done.returncode == 1, done.stderr  # the run's own exit code (its items failed)
    [line] = notify_lines(done.stderr)
    assert line.startswith("agentos: warning: notification 1 of 2 (json://) failed: "), line
    assert len(receiver.wait()) == 1  # the other receiver still got it
    assert_no_secret(done, workdir)


def test_a_slow_receiver_does_not_hold_the_exit(workdir: Path) -> None:
    slow = Receiver(delay=60)
    try:
        items = items_file(workdir / "items.txt", ["a"])
        argv = ["run", "--items", str(items), "--notify", slow.url, "--", "true"]
        t0 = time.monotonic()
        done = run(agentos_argv(*argv), cwd=workdir)
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - t0 < 15
        [line] = notify_lines(done.stderr)
        assert "notification 1 of 1 (json://) failed: " in line
        assert_no_secret(done, workdir)
    finally:
        slow.close()


def test_a_url_apprise_does_not_understand_is_exit_2_before_anything(
    workdir: Path, receiver: Receiver
) -> None:
    items = items_file(workdir / "items.txt", ["a"])
    argv = ["run", "--items", str(items), "--notify", receiver.url]
    argv += ["--notify", f"slack://{PATH_TOKEN}", "--", "true"]
    done = run(agentos_argv(*argv), cwd=workdir)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "agentos: error: --notify #2 (slack://...) is not a notification URL apprise "
        "understands (see https://github.com/caronc/apprise/wiki)"
    )
    assert not (workdir / ".agentos").exists()
    assert receiver.messages == []
    assert_no_secret(done, workdir)


def test_a_notify_value_without_a_scheme_is_not_echoed(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a"])
    argv = ["run", "--items", str(items), "--notify", PATH_TOKEN, "--", "true"]
    done = run(agentos_argv(*argv), cwd=workdir)
    assert done.returncode == 2
    assert "--notify #1 (no scheme) is not a notification URL" in done.stderr
    assert PATH_TOKEN not in done.stderr
    assert not (workdir / ".agentos").exists()
