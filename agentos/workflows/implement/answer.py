"""Files in an agent's answer, and the paths no agent may write.

An agent without tools (an HTTP model, `llm:`, a text-only policy) implements by answering: each
file as a `### path` line followed by a fenced block (``` or ~~~, three or more, closed by the
same fence). A heading with a space in it (`### Example usage`) is prose, not a file, unless the
path is in backticks. Every path must stay inside the worktree: no absolute paths, no `..`, no
backslashes, no duplicates, and none of the `CONTROL_PATHS`. Any unsafe path fails the attempt
before anything is written.

`write_files` writes them into the worktree without following a symlink anywhere on the way
(`agentos.beneath`): a repository may hold a committed symlink (`docs -> /home/you`) and an
answer may name a path through it.

The same paths are refused whatever wrote them: `forbidden_changes` checks the worktree's diff
after an agent that edits with its own tools.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agentos.beneath import UnsafePath, write_beneath
from agentos.errors import ItemError

MAX_FILES = 500
_HEADER = re.compile(r"^#{2,4}\s+(?:`([^`\n]+)`|([^`\s]+))\s*$")
_FENCE = re.compile(r"^(`{3,}|~{3,})[^`\n]*$")

#: Paths an agent's work may not create or change, with why. Git's own folder (any `.git`
#: component: `.git/config` can name a command that every `git status` runs), agentos's, and
#: files that tools run or that grant agents permissions the next time someone opens the
#: repository, or that run with the repository's secrets when the branch is pushed. A person adds
#: those; the agent's attempt fails naming the path.
CONTROL_PATHS: tuple[tuple[str, str], ...] = (
    (".agentos/*", "agentos's own folder"),
    (".envrc", "direnv runs it on entering the folder"),
    (".claude/settings.json", "it grants Claude Code permissions"),
    (".claude/settings.local.json", "it grants Claude Code permissions"),
    (".gemini/settings.json", "it configures Gemini CLI's tools"),
    (".vscode/settings.json", "editors run what it names"),
    (".vscode/tasks.json", "editors run what it names"),
    (".github/workflows/*", "CI runs it with the repository's secrets when pushed"),
    (".gitlab-ci.yml", "CI runs it with the repository's secrets when pushed"),
)


@dataclass(frozen=True)
class AnswerFile:
    """A file an answer writes: its path in the repository and its content."""

    path: str
    content: str


def control_path(path: str) -> str | None:
    """Why an agent may not write `path` (relative, posix), or None when it may."""
    parts = PurePosixPath(path).parts
    if any(part.lower() == ".git" or part.lower().startswith(".git/") for part in parts):
        return "git's own folder"
    lowered = "/".join(parts).lower()
    for pattern, why in CONTROL_PATHS:
        if fnmatch.fnmatchcase(lowered, pattern):
            return why
    return None


def parse_answer(answer: str) -> list[AnswerFile]:
    """The files of an answer, in order. Raises ItemError for unsafe or repeated paths."""
    lines = answer.splitlines()
    files: list[AnswerFile] = []
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
        files.append(AnswerFile(check_path(path), "\n".join(lines[j + 1 : end]) + "\n"))
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
    """A safe relative path inside the worktree, or an ItemError that says why not."""
    path = raw.strip()
    why = None
    if not path:
        why = "it is empty"
    elif "\\" in path or "\0" in path or any(ord(c) < 32 or ord(c) == 127 for c in path):
        why = "it contains a backslash or control characters"
    elif path.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", path):
        why = "absolute paths are not allowed"
    elif ".." in PurePosixPath(path).parts:
        why = "'..' is not allowed"
    elif PurePosixPath(path).as_posix() in ("", "."):
        why = "it names no file"
    else:
        why = control_path(PurePosixPath(path).as_posix())
        if why is not None:
            why = f"agents may not write it ({why})"
    if why:
        raise ItemError(
            f"the agent's answer has an unsafe path {raw.strip()[:120]!r}: {why}; "
            "nothing was written"
        )
    return PurePosixPath(path).as_posix()


def forbidden_changes(paths: list[str]) -> list[str]:
    """`path (why)` for each changed path an agent may not change."""
    found = []
    for path in paths:
        why = control_path(path)
        if why is not None:
            found.append(f"{path} ({why})")
    return found


def write_files(root: Path, files: list[AnswerFile]) -> None:
    """Write `files` beneath `root` (see the module docstring); an ItemError names a file
    that cannot be written. Files written before a failing one stay: the worktree is the
    item's scratch space, and the next attempt starts from what is there."""
    for f in files:
        try:
            # a symlink where the file goes is replaced (as git would when the file changes
            # type), never followed
            write_beneath(root, f.path, f.content, durable=False, replace_link=True)
        except UnsafePath as exc:
            raise ItemError(f"cannot write {f.path} in the worktree: {exc}") from None
        except OSError as exc:
            raise ItemError(f"cannot write {f.path} in the worktree: {exc.strerror}") from None
