"""What a person sees in a terminal: colours on a TTY only, the progress bar in a narrow tmux
pane, the status line."""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.processes import agentos_argv, clean_env, items_file, run
from support.tmux import Tmux


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
