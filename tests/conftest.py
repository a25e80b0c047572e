"""Shared fixtures: running agentos as a real process, and proving nothing it started is left.

Every test is checked by `no_leftover_processes` (autouse): after the test, no process may still
carry an agentos run tag in its environment (workers, item commands, their daemonised children),
and no process may still run in a session a test started. Zombies do not count: they are dead,
waiting for init to reap them.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TAG = b"AGENTOS_RUN_TAG="


def tagged_pids() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if TAG in f.read() and _running(int(entry)):
                    found.append(int(entry))
        except OSError:
            pass
    return found


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def session_pids(sid: int) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (OSError, psutil.Error):
            pass
    return found


def wait_until_gone(check, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    left = check()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = check()
    return left


_LIVE: list[Live] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The chaos suite's figures (the README's Reliability section quotes them)."""
    helpers = sys.modules.get("chaos_helpers")
    if helpers is None or not helpers.TALLY:
        return
    terminalreporter.section("chaos figures")
    for name, count in sorted(helpers.TALLY.items()):
        terminalreporter.write_line(f"{name}: {count}")


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    yield
    for live in _LIVE:  # a test that failed midway leaves its agentos running: stop it first
        if live.proc.poll() is None:
            os.killpg(live.proc.pid, signal.SIGKILL)
            live.proc.wait()
    _LIVE.clear()
    left = wait_until_gone(tagged_pids, timeout=5.0)
    details = []
    for pid in left:
        try:
            details.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())}")
            os.kill(pid, signal.SIGKILL)
        except (OSError, psutil.Error):
            pass
    assert not left, f"processes started by agentos outlived it: {details}"


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def agentos_argv(*args: str) -> list[str]:
    return [PYTHON, "-m", "agentos", *args]


def script_argv(script: str, *args: str) -> list[str]:
    return [PYTHON, str(REPO / "scripts" / script), *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENTOS_") and k not in ("NO_COLOR", "PYTEST_CURRENT_TEST")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run(
    argv: list[str],
    *,
    cwd: Path,
    input: str | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> Finished:
    t0 = time.monotonic()
    proc = subprocess.run(
        argv,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or clean_env(),
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return Finished(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


class Live:
    """A running agentos in its own session, like a job in a terminal: `interrupt()` sends the
    signal to the whole process group, the way a terminal's Ctrl+C does."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env or clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.out = b""
        self.err = b""
        self._sel = selectors.DefaultSelector()
        assert self.proc.stdout and self.proc.stderr
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stderr.fileno(), False)
        self._sel.register(self.proc.stdout, selectors.EVENT_READ, "out")
        self._sel.register(self.proc.stderr, selectors.EVENT_READ, "err")
        _LIVE.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self, timeout: float) -> None:
        for key, _ in self._sel.select(timeout):
            data = os.read(key.fd, 65536)
            if not data:
                self._sel.unregister(key.fileobj)
            elif key.data == "out":
                self.out += data
            else:
                self.err += data

    def wait_for(
        self, text: str, *, stream: str = "out", count: int = 1, timeout: float = 30
    ) -> None:
        deadline = time.monotonic() + timeout
        needle = text.encode()
        while time.monotonic() < deadline:
            buf = self.out if stream == "out" else self.err
            if buf.count(needle) >= count:
                return
            if not self._sel.get_map():
                break
            self._pump(0.05)
        raise AssertionError(
            f"{text!r} x{count} did not appear in {stream}; "
            f"out={self.out[-2000:]!r} err={self.err[-2000:]!r}"
        )

    def interrupt(self, signum: int = signal.SIGINT, *, group: bool = True) -> None:
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            os.kill(self.proc.pid, signum)

    def finish(self, timeout: float = 60) -> Finished:
        t0 = time.monotonic()
        deadline = t0 + timeout
        while self._sel.get_map() and time.monotonic() < deadline:
            self._pump(0.1)
        try:
            code = self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        self._sel.close()
        return Finished(
            code,
            self.out.decode(errors="replace"),
            self.err.decode(errors="replace"),
            time.monotonic() - t0,
        )


def loky_workers(parent: int) -> list[psutil.Process]:
    """The worker processes of an agentos run: forked workers share the parent's command line,
    fork+exec workers run loky's popen_loky_posix."""
    me = psutil.Process(parent)
    cmdline = me.cmdline()
    return [
        child
        for child in me.children()
        if child.cmdline() == cmdline or "popen_loky_posix" in " ".join(child.cmdline())
    ]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def items_file(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def only_run_dir(workdir: Path) -> Path:
    runs = sorted((workdir / ".agentos" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]
