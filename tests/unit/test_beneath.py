"""agentos.beneath: writes beneath a directory never follow a symlink out of it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agentos.beneath import Beneath, UnsafePath, open_beneath, relative_parts, write_beneath


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    return victim


@pytest.fixture
def root(tmp_path: Path) -> Path:
    place = tmp_path / "repo"
    place.mkdir()
    return place


def test_a_file_is_written_whole_with_its_parents(root: Path) -> None:
    path = write_beneath(root, "docs/lld/drafts/a.md", "text\n")
    assert path == root / "docs/lld/drafts/a.md"
    assert path.read_text() == "text\n"
    write_beneath(root, "docs/lld/drafts/a.md", b"new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in path.parent.iterdir()] == ["a.md"]  # no temp file left


def test_a_symlinked_parent_is_refused(root: Path, outside: Path) -> None:
    (root / "docs").mkdir()
    os.symlink(outside.parent, root / "docs" / "lld")
    with pytest.raises(UnsafePath, match=r"docs/lld is a symbolic link"):
        write_beneath(root, "docs/lld/drafts/a.md", "x")
    assert sorted(p.name for p in outside.parent.iterdir()) == ["victim.txt"]


def test_a_symlink_where_the_file_goes_is_refused_and_its_target_kept(
    root: Path, outside: Path
) -> None:
    os.symlink(outside, root / "a.md")
    with pytest.raises(UnsafePath, match=r"a\.md is a symbolic link"):
        write_beneath(root, "a.md", "x")
    assert outside.read_text() == "precious\n"
    # asked to, the link itself is replaced; its target is never written
    write_beneath(root, "a.md", "mine\n", replace_link=True)
    assert not (root / "a.md").is_symlink()
    assert (root / "a.md").read_text() == "mine\n"
    assert outside.read_text() == "precious\n"


def test_open_for_writing_refuses_links_fifos_and_hard_links(root: Path, outside: Path) -> None:
    os.makedirs(root / ".agentos" / "locks")
    os.symlink("../../../outside/victim.txt", root / ".agentos/locks/x.lock")
    flags = os.O_RDWR | os.O_CREAT
    with pytest.raises(UnsafePath, match="is a symbolic link"):
        open_beneath(root, ".agentos/locks/x.lock", flags)
    assert outside.read_text() == "precious\n"
    os.mkfifo(root / "fifo")
    with pytest.raises(UnsafePath, match="not a regular file"):
        open_beneath(root, "fifo", os.O_WRONLY)  # would block without O_NONBLOCK
    os.link(outside, root / "hard")
    with pytest.raises(UnsafePath, match="hard links"):
        open_beneath(root, "hard", os.O_WRONLY | os.O_TRUNC)
    assert outside.read_text() == "precious\n"
    # reading through a hard link is fine; a plain new file opens and blocks normally
    os.close(open_beneath(root, "hard"))
    fd = open_beneath(root, "new/file", os.O_WRONLY | os.O_CREAT, create_parents=True)
    try:
        assert os.get_blocking(fd)
    finally:
        os.close(fd)


def test_bad_relative_paths_are_refused_before_anything_is_touched(root: Path) -> None:
    for bad in ("", "/etc/passwd", "a/../../b", "..", "a\0b", "."):
        with pytest.raises(UnsafePath):
            relative_parts(bad)
    assert relative_parts("./a//b/") == ("a", "b")
    assert list(root.iterdir()) == []


def test_a_component_that_is_a_file_is_not_a_directory(root: Path) -> None:
    (root / "docs").write_text("")
    with pytest.raises(NotADirectoryError) as caught:
        write_beneath(root, "docs/a.md", "x")
    assert not isinstance(caught.value, UnsafePath)  # an ordinary error, in the system's words


def test_modes_honour_the_umask_unless_a_stricter_one_is_asked(root: Path) -> None:
    old = os.umask(0o077)
    try:
        write_beneath(root, "d/a.txt", "x")
        with Beneath(root) as place:
            place.write_atomic("b.txt", "x", mode=0o600)
            place.makedirs("e/f")
    finally:
        os.umask(old)
    assert stat.S_IMODE((root / "d/a.txt").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "d").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "e/f").stat().st_mode) == 0o700
    old = os.umask(0o022)
    try:
        write_beneath(root, "c.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((root / "c.txt").stat().st_mode) == 0o644


def test_sub_and_lstat_and_unlink_stay_beneath(root: Path, outside: Path) -> None:
    os.symlink(outside.parent, root / "link")
    with Beneath(root) as place:
        with pytest.raises(UnsafePath):
            place.sub("link")
        with place.sub("logs", create=True) as logs:
            fd = logs.open("a.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.write(fd, b"line\n")
            os.close(fd)
        assert (root / "logs/a.log").read_bytes() == b"line\n"
        info = place.lstat("link")
        assert info is not None and stat.S_ISLNK(info.st_mode)
        assert place.lstat("missing/x") is None
        place.unlink("link")
        place.unlink("link")  # missing is fine
    assert outside.exists()
