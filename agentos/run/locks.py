"""One run of a workflow per repository at a time.

Two `agentos requirements` on one repository would both draft every brief (twice the agent
work, paid for twice) and the last writer would win. A run of a workflow that writes into a
workspace therefore holds an OS file lock, `<workspace>/.agentos/locks/<workflow>.lock`, for as
long as it runs. It is an `flock`: the kernel drops it when the holder dies, however it dies, so
a crashed run never leaves a stale lock behind. The file also says who holds it (pid, run
directory, since when), so the second run can name the first in its one-line refusal. Other
workflows on the same repository (`implement` while `requirements` runs) do not conflict.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

from agentos.beneath import UnsafePath, open_beneath
from agentos.errors import ConfigError


class WorkspaceLock:
    def __init__(self, workspace: Path, workflow: str, run_dir: Path) -> None:
        self.path = workspace / ".agentos" / "locks" / f"{workflow}.lock"
        self.workspace = workspace
        self.workflow = workflow
        self.run_dir = run_dir
        self._fd: int | None = None

    def __enter__(self) -> WorkspaceLock:
        try:
            # the workspace may be a cloned repository: a lock file (or .agentos) committed as
            # a link must not make us open, let alone truncate, a file elsewhere
            fd = open_beneath(
                self.workspace,
                self.path.relative_to(self.workspace),
                os.O_RDWR | os.O_CREAT,
                create_parents=True,
            )
        except UnsafePath as exc:
            raise ConfigError(f"{exc}; remove the link from {self.workspace}") from None
        except OSError as exc:
            raise ConfigError(
                f"cannot create the lock file {self.path}: {exc.strerror}; "
                f"agentos {self.workflow} needs to write in {self.workspace}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise ConfigError(
                f"another agentos {self.workflow} run is working on {self.workspace}{holder}; "
                "wait for it to finish or stop it (two runs would do every item twice)"
            ) from None
        info = {
            "pid": os.getpid(),
            "run_dir": str(self.run_dir.resolve()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # releases the lock
            self._fd = None


def _describe(fd: int) -> str:
    """` (pid 123, run dir X, since T)` from the holder's note, or nothing if it has none yet."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return ""
    if not isinstance(info, dict) or "pid" not in info:
        return ""
    return f" (pid {info['pid']}, run dir {info.get('run_dir')}, since {info.get('since')})"
