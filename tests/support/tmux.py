"""A real terminal to look at: a tmux server of the test's own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from support.processes import clean_env


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
