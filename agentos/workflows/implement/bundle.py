"""An implementer's answer → files on disk, safely.

The answer lists files as a `### path` line followed by a fenced block (``` or ~~~, three or more,
closed by the same fence). A heading with a space in it (`### Example usage`) is prose, not a
file, unless the path is in backticks. Every path must stay inside the bundle: no absolute
paths, no `..`, no backslashes, no duplicates, nothing named like the report. Any unsafe path
fails the whole item before anything is written. The bundle is written to a temporary directory
next to its target, fsynced, and renamed into place, so a crash or kill never leaves half a
bundle.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agentos.errors import ItemError

REPORT = "REPORT.md"
MAX_FILES = 500
_HEADER = re.compile(r"^#{2,4}\s+(?:`([^`\n]+)`|([^`\s]+))\s*$")
_FENCE = re.compile(r"^(`{3,}|~{3,})[^`\n]*$")


@dataclass(frozen=True)
class BundleFile:
    path: str
    content: str


def parse_answer(answer: str) -> list[BundleFile]:
    """The files of an answer, in order. Raises ItemError for unsafe or repeated paths."""
    lines = answer.splitlines()
    files: list[BundleFile] = []
    i = 0
    while i < len(lines):
        header = _HEADER.match(lines[i])
        if not header:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        fence = _FENCE.match(lines[j]) if j < len(lines) else None
        if not fence:
            i += 1
            continue  # a heading that is not a file
        closing = fence.group(1)
        end = j + 1
        while end < len(lines) and lines[end].rstrip() != closing:
            end += 1
        if end == len(lines):
            raise ItemError(
                f"the answer's block for {header.group(1) or header.group(2)!r} is never closed "
                f"(expected a line {closing})"
            )
        path = header.group(1) or header.group(2)
        files.append(BundleFile(check_path(path), "\n".join(lines[j + 1 : end]) + "\n"))
        i = end + 1
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            raise ItemError(f"the answer gives {f.path} twice")
        seen.add(f.path)
    if len(files) > MAX_FILES:
        raise ItemError(f"the answer has {len(files)} files; at most {MAX_FILES} are accepted")
    return files


def check_path(raw: str) -> str:
    """A safe relative path inside the bundle, or an ItemError that says why not."""
    path = raw.strip()
    why = None
    if not path:
        why = "it is empty"
    elif "\\" in path or "\0" in path or any(ord(c) < 32 for c in path):
        why = "it contains a backslash or control characters"
    elif path.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", path):
        why = "absolute paths are not allowed"
    elif ".." in PurePosixPath(path).parts:
        why = "'..' is not allowed"
    elif PurePosixPath(path).as_posix() in ("", ".", REPORT):
        why = f"{REPORT} is written by agentos" if path == REPORT else "it names no file"
    if why:
        raise ItemError(
            f"the agent's answer has an unsafe path {raw.strip()[:120]!r}: {why}; "
            "nothing was written"
        )
    return PurePosixPath(path).as_posix()


def write_bundle(target: Path, files: list[BundleFile], report: str) -> None:
    """Write `files` and REPORT.md as the directory `target`, atomically (temp dir + rename).
    An existing `target` (from --force) is replaced only once the new bundle is complete."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise ItemError(f"cannot write {target}: {exc.strerror}") from None
    old: Path | None = None
    try:
        for f in [*files, BundleFile(REPORT, report)]:
            dest = tmp / f.path
            if not dest.resolve().is_relative_to(tmp.resolve()):  # symlinks in the way
                raise ItemError(
                    f"{f.path} would be written outside the bundle; nothing was written"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "w", encoding="utf-8") as out:
                out.write(f.content)
                out.flush()
                os.fsync(out.fileno())
        if target.exists():
            old = parent / f".{target.name}.old-{os.getpid()}"
            os.rename(target, old)
        os.rename(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            with contextlib.suppress(OSError):
                os.rename(old, target)
        raise ItemError(f"cannot write {target}: {exc.strerror}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
