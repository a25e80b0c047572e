"""Writing beneath a directory without following a symbolic link out of it.

A repository agentos writes into may come from anywhere, and a run directory may be reused: a
committed symlink `docs/lld -> ../../outside` or `.agentos/locks/x.lock -> ~/victim` must not
make agentos write (or truncate) a file outside the place it means to write. `Beneath(root)`
holds a descriptor of `root` (the caller's choice, trusted: symlinks in the root's own path are
followed, as the user named it) and reaches everything below it one component at a time with
`openat(..., O_NOFOLLOW)`, so no link is followed, and a link swapped in mid-way cannot redirect
a component already reached:

    with Beneath(repo) as place:
        place.write_atomic("docs/lld/drafts/x.md", data)    # temp file + fsync + rename
        fd = place.open("logs/a.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                        create_parents=True)
        place.makedirs("items/a")

Every refusal is an `UnsafePath` (an OSError, so callers that report OSError report it too)
whose message names the path and what is wrong with it. Relative paths are checked first:
absolute paths, `..`, NUL and empty paths are refused before anything is touched.

What is opened for writing must be a regular file with a single link: a FIFO would block the
writer, and a hard link would carry the write to another name. Modes honour the umask (files
0o666, directories 0o777 before it) unless a stricter mode is asked for.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
from pathlib import Path, PurePosixPath
from types import TracebackType

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC | os.O_CREAT
_TEMP_NUMBERS = itertools.count()


class UnsafePath(OSError):
    """A write beneath a directory refused: a symlink, a `..`, or something that is not a
    regular file where one is written."""

    def __str__(self) -> str:
        return str(self.strerror)


def relative_parts(rel: str | os.PathLike[str]) -> tuple[str, ...]:
    """The components of a relative path that stays beneath its root; UnsafePath otherwise."""
    text = os.fspath(rel)
    why = None
    if not text or "\0" in text:
        why = "it is empty or holds a NUL byte"
    elif text.startswith("/"):
        why = "it is absolute"
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if why is None and ".." in parts:
        why = "it contains '..'"
    if why is None and not parts:
        why = "it names no file"
    if why is not None:
        raise UnsafePath(errno.EINVAL, f"refusing to write {text!r}: {why}", text)
    return parts


class Beneath:
    """A directory whose descendants are reached without following symlinks (see the module
    docstring). Use as a context manager, or call `close()`."""

    def __init__(
        self, root: str | os.PathLike[str], *, create: bool = False, mode: int = 0o777
    ) -> None:
        self.root = Path(root)
        if create:
            os.makedirs(self.root, mode=mode, exist_ok=True)
        self.fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    @classmethod
    def from_fd(cls, fd: int, root: Path) -> Beneath:
        """A Beneath over a directory descriptor the caller hands over (and no longer owns)."""
        place = cls.__new__(cls)
        place.root, place.fd = root, fd
        return place

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Beneath:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def path(self, rel: str | os.PathLike[str]) -> Path:
        """Where `rel` is, for messages."""
        return self.root / rel

    # -- directories
    def _walk(
        self, parts: tuple[str, ...], *, create: bool, mode: int, shown: str | os.PathLike[str]
    ) -> int:
        """A new descriptor of the directory `parts` below the root, each component opened
        with O_NOFOLLOW (and made first when `create`)."""
        fd = os.dup(self.fd)
        try:
            for n, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):  # made by someone meanwhile
                        os.mkdir(part, mode, dir_fd=fd)
                    child = self._open_dir_component(fd, parts, n, shown)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    self._refuse_link(fd, parts, n, shown, exc)
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _open_dir_component(
        self, fd: int, parts: tuple[str, ...], n: int, shown: str | os.PathLike[str]
    ) -> int:
        try:
            return os.open(parts[n], _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            self._refuse_link(fd, parts, n, shown, exc)
            raise  # unreachable: _refuse_link always raises

    def _refuse_link(
        self,
        fd: int,
        parts: tuple[str, ...],
        n: int,
        shown: str | os.PathLike[str],
        error: OSError,
    ) -> None:
        """A component that could not be opened as a directory: UnsafePath for a link, else the
        system's own error (a file in the way is "Not a directory", as for any write)."""
        refusal = self._refusal(fd, parts, n, shown, directory=True)
        if "symbolic link" in str(refusal):
            raise refusal from None
        raise OSError(error.errno, error.strerror, str(self.path(shown))) from None

    def _refusal(
        self,
        fd: int,
        parts: tuple[str, ...],
        n: int,
        shown: str | os.PathLike[str],
        *,
        directory: bool = False,
    ) -> UnsafePath:
        where = "/".join(parts[: n + 1])
        try:
            info = os.lstat(parts[n], dir_fd=fd)
        except OSError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode):
            what = "is a symbolic link; agentos does not write through links"
        elif directory:
            what = "is not a directory"
        else:
            what = "is not a regular file"
        return UnsafePath(
            errno.ELOOP, f"refusing to write {self.path(shown)}: {where} {what}", str(shown)
        )

    def open_dir(
        self, rel: str | os.PathLike[str], *, create: bool = False, mode: int = 0o777
    ) -> int:
        """A descriptor (the caller's to close) of the directory `rel`, made when `create`."""
        return self._walk(relative_parts(rel), create=create, mode=mode, shown=rel)

    def sub(
        self, rel: str | os.PathLike[str], *, create: bool = False, mode: int = 0o777
    ) -> Beneath:
        """A Beneath rooted at the directory `rel`, reached without following links."""
        return Beneath.from_fd(self.open_dir(rel, create=create, mode=mode), self.path(rel))

    def check(self, rel: str | os.PathLike[str]) -> None:
        """UnsafePath if a write to the directory `rel` would be refused (a link or a file among
        the components that exist); nothing is made. For checks before a run starts."""
        parts = relative_parts(rel)
        fd = os.dup(self.fd)
        try:
            for n, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    return  # made when written
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    self._refuse_link(fd, parts, n, rel, exc)
                os.close(fd)
                fd = child
        finally:
            os.close(fd)

    def makedirs(self, rel: str | os.PathLike[str], mode: int = 0o777) -> Path:
        """`mkdir -p rel` below the root, refusing links; returns its path."""
        os.close(self.open_dir(rel, create=True, mode=mode))
        return self.path(rel)

    # -- files
    def _parent(
        self, rel: str | os.PathLike[str], create: bool, mode: int
    ) -> tuple[int, str, tuple[str, ...]]:
        parts = relative_parts(rel)
        return self._walk(parts[:-1], create=create, mode=mode, shown=rel), parts[-1], parts

    def open(
        self,
        rel: str | os.PathLike[str],
        flags: int = os.O_RDONLY,
        mode: int = 0o666,
        *,
        create_parents: bool = False,
        parent_mode: int = 0o777,
    ) -> int:
        """`os.open` of `rel` below the root, O_NOFOLLOW and O_CLOEXEC added. Opened for
        writing, it must be a regular file with one link (UnsafePath otherwise)."""
        parent, name, parts = self._parent(rel, create_parents, parent_mode)
        try:
            try:
                # O_TRUNC only once the file is known to be ours to write
                opening = (flags & ~os.O_TRUNC) | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
                fd = os.open(name, opening, mode, dir_fd=parent)
            except OSError as exc:
                # ELOOP: a link (O_NOFOLLOW); ENXIO: a FIFO or socket nobody reads (O_NONBLOCK)
                if exc.errno not in (errno.ELOOP, errno.ENXIO):
                    raise
                raise self._refusal(parent, parts, len(parts) - 1, rel) from None
            try:
                info = os.fstat(fd)
                if flags & _WRITE_FLAGS and (not stat.S_ISREG(info.st_mode) or info.st_nlink > 1):
                    why = "has other hard links" if stat.S_ISREG(info.st_mode) else None
                    raise UnsafePath(
                        errno.EINVAL,
                        f"refusing to write {self.path(rel)}: it "
                        + (why or "is not a regular file"),
                        str(rel),
                    )
                if flags & os.O_TRUNC:
                    os.ftruncate(fd, 0)
                if not flags & os.O_NONBLOCK:
                    os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
            return fd
        finally:
            os.close(parent)

    def lstat(self, rel: str | os.PathLike[str]) -> os.stat_result | None:
        """`lstat` of `rel` (None when it does not exist), its parents reached without links."""
        try:
            parent, name, _ = self._parent(rel, False, 0o777)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return os.lstat(name, dir_fd=parent)
        except FileNotFoundError:
            return None
        finally:
            os.close(parent)

    def unlink(self, rel: str | os.PathLike[str], *, missing_ok: bool = True) -> None:
        try:
            parent, name, _ = self._parent(rel, False, 0o777)
        except FileNotFoundError:
            if missing_ok:
                return
            raise
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            if not missing_ok:
                raise
        finally:
            os.close(parent)

    def write_atomic(
        self,
        rel: str | os.PathLike[str],
        data: bytes | str,
        *,
        mode: int = 0o666,
        durable: bool = True,
        replace_link: bool = False,
    ) -> Path:
        """Write `rel` whole: a new temp file beside it (O_EXCL: never a link's target), fsync
        unless `durable` is False, then rename onto it, so a reader sees the old file or the new
        one. A symlink where the file goes is refused (UnsafePath) unless `replace_link`, which
        replaces the link itself (its target is never touched). Missing folders are made.
        Returns the file's path."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        parent, name, parts = self._parent(rel, True, 0o777)
        try:
            if not replace_link:
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode):
                        raise self._refusal(parent, parts, len(parts) - 1, rel)
            fd, tmp = _temp_file(parent, name, mode)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if durable:
                    os.fsync(fd)
                os.close(fd)
                fd = -1
                os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=parent)
                raise
        finally:
            os.close(parent)
        return self.path(rel)


def _temp_file(parent: int, name: str, mode: int) -> tuple[int, str]:
    """A new file `.<name>.<pid>.<n>.tmp` in the directory `parent` (O_EXCL: a name taken by
    anything, a link included, is skipped)."""
    while True:
        tmp = f".{name}.{os.getpid()}.{next(_TEMP_NUMBERS)}.tmp"
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode, dir_fd=parent
            )
        except FileExistsError:
            continue
        return fd, tmp


def write_beneath(
    root: str | os.PathLike[str], rel: str | os.PathLike[str], data: bytes | str, **options: object
) -> Path:
    """`Beneath(root).write_atomic(rel, data, **options)` in one call."""
    with Beneath(root) as place:
        return place.write_atomic(rel, data, **options)  # type: ignore[arg-type]


def open_beneath(
    root: str | os.PathLike[str],
    rel: str | os.PathLike[str],
    flags: int = os.O_RDONLY,
    mode: int = 0o666,
    *,
    create_parents: bool = False,
) -> int:
    """`Beneath(root).open(rel, ...)` in one call: a descriptor, the caller's to close."""
    with Beneath(root) as place:
        return place.open(rel, flags, mode, create_parents=create_parents)
