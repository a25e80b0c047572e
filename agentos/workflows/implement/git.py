"""Git, as the implement workflow uses it: facts about the user's repository (read in the parent,
before anything runs) and one worktree and branch per item (made in the workers).

    the user's checkout          <top>/            HEAD, index and working tree: never touched
    agentos's folder             <top>/.agentos/   ignored by git through its own .gitignore ("*")
    an item's worktree           <top>/.agentos/worktrees/<id>/   on branch agentos/<id>

`git worktree add` updates files shared by every worktree (`.git/worktrees/`, the branch refs)
under git's own lock files, and fails rather than waits when another process holds them; so every
add, remove and prune here runs under one `flock` per repository. Commits in different worktrees
touch different refs and need no lock of ours; `gc.auto=0` keeps a commit from starting a
repository-wide garbage collection in the middle of a parallel run.

Every git command runs without the run's keys in its environment and without a terminal prompt
(`GIT_TERMINAL_PROMPT=0`): a push that needs a password fails in one line instead of hanging.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from agentos.beneath import Beneath, UnsafePath
from agentos.errors import ConfigError, ItemError
from agentos.governor.credentials import CREDENTIALS_ENV
from agentos.text import plural

#: agentos's folder in a repository, and what it holds
AGENTOS_DIR = ".agentos"
WORKTREES = f"{AGENTOS_DIR}/worktrees"
BRANCH_PREFIX = "agentos/"
GIT_TIMEOUT = 300.0
#: git options for every command: no auto-gc mid-run, no pager, no advice on stderr
_QUIET = ("-c", "gc.auto=0", "-c", "core.pager=cat", "-c", "advice.detachedHead=false")


class GitError(ItemError):
    """A git command failed: its words, and the last line git printed."""


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without keys, without a terminal prompt, in English (its
    messages are matched nowhere, but shown to people who search for them)."""
    env = {k: v for k, v in os.environ.items() if k != CREDENTIALS_ENV}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_OPTIONAL_LOCKS="0")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):  # set by a hook that runs us
        env.pop(name, None)
    if extra:
        env.update(extra)
    return env


def git(
    cwd: Path,
    *args: str,
    check: bool = True,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = GIT_TIMEOUT,
    error: type[Exception] = GitError,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git args` in `cwd`; with `check`, a non-zero exit raises `error` naming the
    command and git's last line."""
    try:
        done = subprocess.run(
            ["git", *_QUIET, *args],
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            env=git_env(env),
            timeout=timeout,
        )
    except FileNotFoundError:
        raise error("git is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise error(f"'git {args[0]}' gave no answer in {timeout:g} s") from None
    if check and done.returncode != 0:
        said = _last_line(done.stderr) or _last_line(done.stdout)
        raise error(f"git {' '.join(args[:2])} failed: {said or f'exit {done.returncode}'}")
    return done


def out(cwd: Path, *args: str, **kwargs: object) -> str:
    """What `git args` printed, stripped."""
    done = git(cwd, *args, **kwargs)  # type: ignore[arg-type]
    return done.stdout.decode("utf-8", errors="surrogateescape").strip()


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# ---- the user's repository, read in the parent ---------------------------------------------


@dataclass(frozen=True)
class Repository:
    """The repository an implement run works on: its top folder, where in it `--repo` pointed
    (`prefix`, "" at the top), the commit every branch starts from, and whether the checkout
    had changes that the branches therefore do not have."""

    top: Path
    prefix: str
    base: str  # a full commit id
    base_name: str  # as the user gave it ("HEAD", "main", "v2.1")
    dirty: bool
    #: the folder that holds the repository's objects and refs (shared by its worktrees)
    git_dir: Path = Path(".git")

    @classmethod
    def open(cls, path: Path, base: str) -> Repository:
        """The repository at `path`; a ConfigError (exit 2) that says what to do when it is
        not one, has no commits, or `base` names no commit."""
        if shutil.which("git") is None:
            raise ConfigError("agentos implement needs git: install it")
        done = git(path, "rev-parse", "--is-bare-repository", "--show-toplevel", check=False)
        lines = done.stdout.decode(errors="surrogateescape").split("\n")
        if done.returncode != 0 or len(lines) < 2 or not lines[1]:
            raise ConfigError(
                f"--repo {path} is not in a git repository: implement works on branches; "
                f"run 'git init' there and commit your code first"
            )
        top = Path(lines[1]).resolve()
        prefix = out(path, "rev-parse", "--show-prefix", error=ConfigError)
        if git(top, "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode != 0:
            raise ConfigError(
                f"the git repository {top} has no commit yet: commit your code first (the "
                "branches agentos makes start from a commit)"
            )
        found = git(
            top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{base}^{{commit}}",
            check=False,
        )  # fmt: skip
        if found.returncode != 0:
            raise ConfigError(f"--base {base!r} names no commit in {top}")
        status = git(top, "status", "--porcelain", "--untracked-files=normal", check=False)
        dirty = any(
            line and not line[3:].startswith(f"{AGENTOS_DIR}/")
            for line in status.stdout.decode(errors="replace").splitlines()
        )
        common = out(top, "rev-parse", "--path-format=absolute", "--git-common-dir")
        return cls(
            top, prefix.rstrip("/"), found.stdout.decode().strip(), base, dirty, Path(common)
        )

    def check_identity(self) -> None:
        """Commits need an author: say how to set one before any agent is paid."""
        for var in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
            if git(self.top, "var", var, check=False).returncode != 0:
                raise ConfigError(
                    "git does not know who commits in "
                    f"{self.top}: set it with git config user.name 'Your Name' and git config "
                    "user.email you@example.com (agentos commits each item's work as you)"
                )

    def show(self, path: str) -> bytes | None:
        """A file's content at the base commit, None when it has none."""
        done = git(self.top, "show", f"{self.base}:{path}", check=False)
        return done.stdout if done.returncode == 0 else None

    def top_level_names(self) -> set[str]:
        """The names at the top of the base commit's tree."""
        listing = git(self.top, "ls-tree", "--name-only", self.base, check=False)
        return set(listing.stdout.decode(errors="surrogateescape").splitlines())

    def branches(self, prefix: str = BRANCH_PREFIX) -> dict[str, tuple[str, str]]:
        """Branch name -> (commit id, commit message) of every branch under `prefix`."""
        listing = git(
            self.top,
            "for-each-ref",
            "--format=%(refname:lstrip=2)%00%(objectname)%00%(contents)%00%00",
            f"refs/heads/{prefix}",
        )
        found: dict[str, tuple[str, str]] = {}
        for record in listing.stdout.decode(errors="replace").split("\0\0"):
            parts = record.lstrip("\n").split("\0")
            if len(parts) >= 3 and parts[0]:
                found[parts[0]] = (parts[1], parts[2])
        return found

    def remote_branches(self, remote: str, prefix: str = BRANCH_PREFIX) -> dict[str, str] | None:
        """Branch name -> commit id on `remote` (one `ls-remote`); None when it cannot be read."""
        done = git(self.top, "ls-remote", "--heads", remote, f"refs/heads/{prefix}*", check=False)
        if done.returncode != 0:
            return None
        found = {}
        for line in done.stdout.decode(errors="replace").splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith("refs/heads/"):
                found[ref.removeprefix("refs/heads/")] = sha
        return found

    def check_remote(self, remote: str) -> None:
        if git(self.top, "remote", "get-url", "--", remote, check=False).returncode != 0:
            known = out(self.top, "remote", error=ConfigError).split()
            raise ConfigError(
                f"--push {remote!r}: no such remote in {self.top}"
                + (f" (it has: {', '.join(known)})" if known else " (it has none)")
            )


def trailers(message: str) -> dict[str, str]:
    """A commit message's trailers (`Key: value` lines of its last paragraph)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    found: dict[str, str] = {}
    if len(paragraphs) < 2:
        return found
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if sep and re.fullmatch(r"[A-Za-z0-9-]+", key):
            found[key] = value.strip()
    return found


def valid_branch(name: str) -> bool:
    return git(Path("."), "check-ref-format", "--branch", name, check=False).returncode == 0


# ---- worktrees, made and removed in the workers ---------------------------------------------


def agentos_dir(top: Path) -> Beneath:
    """`<top>/.agentos`, made if needed, with a .gitignore of "*" so that git (and the tools
    that follow .gitignore) never shows what agentos keeps there; reached without following a
    symlink (a hostile repository's `.agentos -> elsewhere` is refused: worktrees must not land
    where it points)."""
    try:
        with Beneath(top) as repo:
            repo.makedirs(AGENTOS_DIR)
            place = repo.sub(AGENTOS_DIR)
    except UnsafePath as exc:
        raise ItemError(f"{exc}; agentos will not write through it") from None
    try:
        fd = place.open(".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return place
    with os.fdopen(fd, "w") as f:
        f.write("# made by agentos: nothing here belongs in the repository\n*\n")
    return place


@dataclass(frozen=True)
class Worktrees:
    """The item worktrees of one repository."""

    top: Path

    @property
    def root(self) -> Path:
        return self.top / WORKTREES

    def path(self, item_id: str) -> Path:
        return self.root / item_id

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One worktree change at a time in this repository, across every process of ours;
        the worktrees' folder made, never through a symlink."""
        with agentos_dir(self.top) as place:
            try:
                place.makedirs("worktrees")
                place.makedirs("locks")
                fd = place.open("locks/worktrees.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            except UnsafePath as exc:
                raise ItemError(f"{exc}; agentos will not write through it") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def open(self, item_id: str, branch: str, base: str) -> Path:
        """The item's worktree on `branch`, as the last attempt left it when there is one (a
        retry or a resume continues there); else a new one, on the branch when it exists (a
        verified commit is built on), or on a new branch from `base`. What a killed run left
        half-made is cleared first."""
        path = self.path(item_id)
        with self.locked():
            registered = self._registered()
            if registered.get(str(path)) == f"refs/heads/{branch}" and (path / ".git").is_file():
                return path
            if str(path) in registered or path.exists() or path.is_symlink():
                self._clear(path)
            git(self.top, "worktree", "prune")
            holder = next((p for p, ref in self._registered().items()
                           if ref == f"refs/heads/{branch}"), None)  # fmt: skip
            if holder is not None:
                raise GitError(
                    f"branch {branch} is checked out in {holder}; agentos works on it in "
                    f"{path}: switch that worktree to another branch"
                )
            if self._has_branch(branch):
                git(self.top, "worktree", "add", "--", str(path), branch)
            else:
                git(self.top, "worktree", "add", "-b", branch, "--", str(path), base)
        return path

    def open_detached(self, name: str, commit: str) -> Path:
        """A scratch worktree `name` of `commit`, on no branch (made anew)."""
        path = self.path(name)
        with self.locked():
            if path.exists() or path.is_symlink() or str(path) in self._registered():
                self._clear(path)
            git(self.top, "worktree", "add", "--detach", "--", str(path), commit)
        return path

    def remove(self, item_id: str) -> None:
        """The item's worktree goes (its branch stays)."""
        path = self.path(item_id)
        with self.locked():
            self._clear(path)

    def _clear(self, path: Path) -> None:
        if path.is_symlink():
            path.unlink()
        git(self.top, "worktree", "remove", "--force", "--force", "--", str(path), check=False)
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        git(self.top, "worktree", "prune")

    def _registered(self) -> dict[str, str]:
        """Worktree path -> the ref it has checked out ("" when detached)."""
        listing = out(self.top, "worktree", "list", "--porcelain", "-z")
        found: dict[str, str] = {}
        for record in listing.split("\0\0"):
            fields = dict(
                line.partition(" ")[::2] for line in record.strip("\0").split("\0") if line
            )
            if "worktree" in fields:
                found[fields["worktree"]] = fields.get("branch", "")
        return found

    def _has_branch(self, branch: str) -> bool:
        found = git(
            self.top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False
        )
        return found.returncode == 0


# ---- an item's worktree: what the agent changed, and the commit -----------------------------


def snapshot(worktree: Path, scratch: Path) -> str:
    """The tree of the worktree as it is now (what `git add -A` would stage: untracked files
    too, ignored ones not), without touching its index: staged in a copy of it, a new file of
    our own in `scratch` (made with O_EXCL: never a file planted there), removed afterwards."""
    index = Path(out(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    fd, name = tempfile.mkstemp(prefix=".snapshot-", suffix=".index", dir=scratch)
    copy = Path(name)
    try:
        with os.fdopen(fd, "wb") as target:
            try:
                with open(index, "rb") as source:
                    shutil.copyfileobj(source, target)
            except FileNotFoundError:
                copy.unlink()  # no index yet: git starts from an empty one
        env = {"GIT_INDEX_FILE": str(copy)}
        git(worktree, "add", "-A", env=env)
        return out(worktree, "write-tree", env=env)
    finally:
        copy.unlink(missing_ok=True)


def changed_paths(worktree: Path, base: str, tree: str) -> list[tuple[str, str]]:
    """(status letter, path) of each path that differs between `base` and `tree`."""
    listing = git(worktree, "diff", "--name-status", "-z", "--no-renames", base, tree)
    fields = listing.stdout.decode("utf-8", errors="surrogateescape").split("\0")
    return [(fields[n][:1], fields[n + 1]) for n in range(0, len(fields) - 1, 2) if fields[n]]


def diffstat(worktree: Path, base: str, tree: str) -> str:
    """`3 files +120 -4`: the size of the change from `base` to `tree`."""
    numbers = out(worktree, "diff", "--numstat", base, tree).splitlines()
    added = removed = 0
    for line in numbers:
        plus, minus, _ = [*line.split("\t", 2), "", ""][:3]
        added += int(plus) if plus.isdigit() else 0
        removed += int(minus) if minus.isdigit() else 0
    files = len(numbers)
    return f"{plural(files, 'file')} +{added} -{removed}"


def commit(worktree: Path, message: str) -> str:
    """Commit everything in the worktree on its branch, as the user (their git config), and
    return the commit id. `--no-verify`: the repository's tests are the gate agentos runs; the
    user's own hooks run when they review and merge."""
    git(worktree, "add", "-A")
    git(worktree, "commit", "--no-verify", "--quiet", "--file=-", input=message.encode("utf-8"))
    return out(worktree, "rev-parse", "HEAD")


def push(worktree: Path, remote: str, branch: str) -> None:
    git(worktree, "push", "--quiet", "--", remote, f"refs/heads/{branch}:refs/heads/{branch}")
