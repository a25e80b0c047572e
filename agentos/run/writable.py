"""Before anything runs: every place the run will write must take a new file.

A folder the agents' answers go into that turns out to be read-only (`chmod`, `chattr +i`, a
read-only mount) is otherwise found by each item at its very end, after its agent calls were
made and paid for, and again by each retry. Checked by making (and removing) a file there: the
permission bits say nothing of an immutable folder or a read-only mount, and root passes every
permission check but not those. A place that does not exist yet is checked where it would be
made, in its nearest existing parent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from agentos.errors import ConfigError


def check_writable(places: Iterable[Path], why: str) -> None:
    """A ConfigError (exit 2) naming the first place of `places` that cannot take a new file;
    `why` says who writes there ("agentos requirements writes its LLDs there")."""
    for place in places:
        problem = _problem(place)
        if problem:
            raise ConfigError(
                f"cannot write to {place}: {problem}; {why}. Make it writable and run again "
                "(nothing was started)"
            )


def _problem(place: Path) -> str | None:
    target = place
    while not target.exists():
        if target.is_symlink():
            return f"{target} is a dangling symbolic link"
        if target.parent == target:
            return "no part of the path exists"
        target = target.parent
    if not target.is_dir():
        return f"{target} is not a directory"
    probe = target / f".agentos-probe.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError as exc:  # made but not removable: an append-only folder (chattr +a)
        return exc.strerror or str(exc)
    return None
