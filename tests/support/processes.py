"""Shared fixtures: running agentos as a real process, and proving nothing it started is left.

Tests observe and kill only what they started. Two things make that possible without looking at
any other process on the machine (a user's overnight run may be going beside the suite):

* the pytest process is a *child subreaper* (`PR_SET_CHILD_SUBREAPER`): a process that a test
  started and that daemonised (double fork, `setsid`) is re-parented to pytest instead of init, so
  it is still in pytest's process tree;
* every test has a *scope*, a unique token in `AGENTOS_TEST_SCOPE` that the test's processes
  inherit through their environment (`clean_env()` puts it there; in-process runs inherit it
  from `os.environ`).

A test's processes are the live descendants of pytest that carry its scope. `no_leftover_processes`
(autouse) checks after every test that none is left, and kills those it finds. Zombies do not
count: they are dead, waiting to be reaped (which the fixture does for the orphans it adopted).

Under pytest-xdist each worker is a pytest process of its own: its own subreaper, scopes that
start with its pid, tmp dirs of its own; the tests of one worker never see another's processes.
This module is the suite's plugin (tests/conftest.py loads it) and what tests import to start
agentos.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SCOPE_ENV = "AGENTOS_TEST_SCOPE"
STATE_ENV = "AGENTOS_STATE_DIR"
NO_PLUGINS_ENV = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
RUN_TAG = b"AGENTOS_RUN_TAG="
_PR_SET_CHILD_SUBREAPER = 36
_scopes = itertools.count(1)
_scope = f"{os.getpid()}-0"
_state_dir = ""


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def pytest_configure(config: pytest.Config) -> None:
    become_subreaper()
    for name, agent in SUITE_AGENTS.items():  # for the runs in this process (CliRunner)
        os.environ[name] = agent
    # A suite started in the background by a non-interactive shell (`make test &`, nohup in a
    # script) inherits SIGINT ignored, and so would every agentos it starts: agentos keeps an
    # ignored SIGINT ignored, as a background job should, and every Ctrl+C test would fail. The
    # suite's own agentos runs stand for foreground ones; an exec'd child gets a handler back as
    # the default action.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def current_scope() -> str:
    return _scope


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read()
    except OSError:
        return b""


def scoped_processes(scope: str | None = None) -> list[psutil.Process]:
    """Live descendants of this pytest process that carry `scope` (default: the current test's)
    in their environment. Only pytest's own process tree is looked at."""
    needle = f"{SCOPE_ENV}={scope or _scope}\0".encode()
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and needle in _environ(proc.pid):
                found.append(proc)
    return found


def scoped_pids(scope: str | None = None) -> list[int]:
    return [p.pid for p in scoped_processes(scope)]


def tagged_pids() -> list[int]:
    """This test's processes that an agentos run started (they carry its run tag): workers, item
    commands and whatever those forked or daemonised."""
    return [p.pid for p in scoped_processes() if RUN_TAG in _environ(p.pid)]


def session_pids(sid: int) -> list[int]:
    """This test's processes in session `sid`."""
    found = []
    for proc in scoped_processes():
        with contextlib.suppress(OSError):
            if os.getsid(proc.pid) == sid:
                found.append(proc.pid)
    return found


def running(command: str) -> list[int]:
    """This test's processes whose command line contains `command`."""
    found = []
    for proc in scoped_processes():
        with contextlib.suppress(psutil.Error):
            if command in " ".join(proc.cmdline()):
                found.append(proc.pid)
    return found


def reap_adopted_zombies() -> None:
    """Orphans re-parented to pytest (the subreaper) become its zombies when they exit."""
    for proc in psutil.Process().children():
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if proc.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(proc.pid, os.WNOHANG)


def wait_until_gone(check: Callable[[], list[int]], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    left = check()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = check()
    return left


_LIVE: list[Live] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The chaos suite's figures (the README's Reliability section quotes them)."""
    helpers = sys.modules.get("support.chaos")
    if helpers is None or not helpers.TALLY:
        return
    terminalreporter.section("chaos figures")
    for name, count in sorted(helpers.TALLY.items()):
        terminalreporter.write_line(f"{name}: {count}")


@pytest.fixture(autouse=True)
def no_leftover_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    global _scope, _state_dir
    _scope = f"{os.getpid()}-{next(_scopes)}"
    # keys a test parks (out of quota) are remembered in a state directory of the test's own
    _state_dir = str(tmp_path_factory.mktemp("agentos-state"))
    os.environ[SCOPE_ENV] = _scope  # in-process runs (CliRunner) fork workers from pytest
    os.environ[STATE_ENV] = _state_dir
    try:
        yield
    finally:
        os.environ.pop(SCOPE_ENV, None)
        os.environ.pop(STATE_ENV, None)
    for live in _LIVE:  # a test that failed midway leaves its agentos running: stop it first
        if live.proc.poll() is None:
            os.killpg(live.proc.pid, signal.SIGKILL)
            live.proc.wait()
    _LIVE.clear()
    left = wait_until_gone(scoped_pids, timeout=5.0)
    details = []
    for pid in left:
        try:
            details.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())}")
            os.kill(pid, signal.SIGKILL)
        except (OSError, psutil.Error):
            pass
    reap_adopted_zombies()
    assert not left, f"processes started by this test outlived it: {details}"


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
    # this virtualenv first, as for a user who activated theirs: its python has pytest, which
    # the implement workflow finds and runs in the demo's worktrees
    env["PATH"] = os.pathsep.join([os.path.dirname(PYTHON), env.get("PATH", os.defpath)])
    env[SCOPE_ENV] = _scope  # marks every process the test starts as this test's
    # the tests of the repositories agentos works on here need no pytest plugin, and loading
    # this virtualenv's (hypothesis's above all) costs two seconds of CPU at each start
    env[NO_PLUGINS_ENV] = "1"
    env[STATE_ENV] = _state_dir
    env.update(SUITE_AGENTS)
    env.update(extra)
    return env


#: The suite's agents unless a test names others: the workflows have no default agent, and the
#: offline mock is what most tests drive them with. Tests of the refusal remove these.
SUITE_AGENTS = {"AGENTOS_DRAFTER": "mock", "AGENTOS_IMPLEMENTER": "mock"}


def git_repo(path: Path, *, branch: str = "main") -> Path:
    """Make `path` (a folder of files) a git repository whose one commit holds them all, with a
    committer of its own (the test machine may have no git identity)."""

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)

    git("-c", f"init.defaultBranch={branch}", "init", "-q")
    git("config", "user.name", "agentos tests")
    git("config", "user.email", "tests@agentos.invalid")
    git("add", "-A")
    git("commit", "-q", "--allow-empty", "-m", "the repository under test")
    return path


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
        if cmdline_of(child) == cmdline or "popen_loky_posix" in " ".join(cmdline_of(child))
    ]


def cmdline_of(proc: psutil.Process) -> list[str]:
    """Its command line, or [] for a process that exited since it was listed."""
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


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
