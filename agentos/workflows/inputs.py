"""Reading a workflow's input folder: listing the files, naming the items, reading one file.

Shared by the requirements and implement workflows. Problems with the folder (missing, two files
giving one id) are ConfigErrors before anything runs; problems with one file (empty, binary, not
UTF-8) fail that item only, with a reason that names the file.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from agentos.errors import ConfigError, ItemError
from agentos.item.ids import id_problem
from agentos.text import plural

log = logging.getLogger("agentos")


def slugify(stem: str) -> str:
    """`My Idea_v2` -> `my-idea-v2`: lower case, runs of other characters become one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")


def repo_path(repo: Path) -> Path:
    if not repo.exists():
        raise ConfigError(f"--repo {repo} does not exist")
    if not repo.is_dir():
        raise ConfigError(f"--repo {repo} is not a directory")
    return repo.resolve()


def markdown_files(folder: Path, repo: Path, what: str) -> list[str]:
    """Names of the `*.md` files in `folder`, sorted. Plain names and one scandir, not Path
    objects and a stat each: a dry run over 10 000 briefs must take about a second."""
    try:
        with os.scandir(folder) as entries:
            found = [e for e in entries if e.name.endswith(".md") and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(
            f"no {what} folder: {folder} does not exist (is --repo {repo} right?)"
        ) from None
    outside = [e.name for e in found if e.is_symlink() and not _inside(e.path, repo)]
    if outside or not _inside(str(folder), repo):
        # a cloned repository's `ideas/active/x.md -> ~/.ssh/id_rsa` would send the file to
        # the agent's provider
        skipped = outside or [e.name for e in found]
        log.warning(
            "skipped %s that link%s outside %s: %s",
            plural(len(skipped), "file"),
            "s" if len(skipped) == 1 else "",
            repo,
            ", ".join(skipped),
        )
        found = [e for e in found if e.name not in set(skipped)]
    return sorted(e.name for e in found)


def _inside(path: str, repo: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(repo))


def names_in(folder: Path) -> set[str]:
    """The entry names of `folder`, empty when it does not exist (for 'is it done yet')."""
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def name_items(
    names: list[str], make_id: Callable[[str], str | None], folder: str
) -> list[tuple[str, str]]:
    """(id, file name) for every file that gives a valid id. Files that give none are skipped
    with one warning listing them; two files giving the same id stop the run (exit 2)."""
    named: list[tuple[str, str]] = []
    skipped: list[str] = []
    for name in names:
        item_id = make_id(name)
        if item_id is None or id_problem(item_id):
            skipped.append(name)
        else:
            named.append((item_id, name))
    if skipped:
        log.warning(
            "skipped %s whose names give no valid item id: %s",
            plural(len(skipped), "file"),
            ", ".join(sorted(skipped)),
        )
    seen: dict[str, str] = {}
    for item_id, name in named:
        if item_id in seen:
            raise ConfigError(
                f"{folder}/{seen[item_id]} and {folder}/{name} both give the item id "
                f"{item_id}; rename one of them"
            )
        seen[item_id] = name
    return named


def read_head(path: str | Path, size: int = 16384) -> str | None:
    """The file's first `size` bytes as text, without a byte-order mark; None when it cannot be
    read. For titles and status in listings, which must not fail: the item fails later, saying
    why."""
    try:
        with open(path, "rb") as f:
            data = f.read(size)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


def first_heading(path: str | Path, fallback: str) -> str:
    """The first `# ` heading in the file's first 16 KiB (for titles; never fails)."""
    for line in (read_head(path) or "").splitlines():
        if line.startswith("# "):
            return line[2:].strip() or fallback
    return fallback


def read_text(path: Path, what: str) -> str:
    """The file as text, or an ItemError that says what is wrong with it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ItemError(f"cannot read {what} {path.name}: {exc.strerror}") from None
    if not data.strip():
        raise ItemError(f"{what} {path.name} is empty")
    if b"\0" in data:
        raise ItemError(f"{what} {path.name} is binary, not text")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # editors on Windows write one
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise ItemError(
            f"{what} {path.name} is not UTF-8 text (byte 0x{bad:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None
