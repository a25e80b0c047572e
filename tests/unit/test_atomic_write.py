"""atomic_write_bytes: readers see the old file or the whole new one; no temp file is left."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from agentos import beneath
from agentos.rundir.journal import atomic_write_bytes


def test_replaces_the_file_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write_bytes(target, b"old\n")
    atomic_write_bytes(target, b"new\n", mode=0o600)
    assert target.read_bytes() == b"new\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_leftover_temp_file_of_a_dead_writer_with_our_pid_is_skipped(tmp_path: Path) -> None:
    """Temp names are pid + counter; a crashed process that had our pid may have left the very
    name we would take next."""
    target = tmp_path / "summary.json"
    upcoming = next(beneath._TEMP_NUMBERS) + 1
    leftover = tmp_path / f".summary.json.{os.getpid()}.{upcoming}.tmp"
    leftover.write_bytes(b"half a summ")
    atomic_write_bytes(target, b"whole\n")
    assert target.read_bytes() == b"whole\n"
    assert leftover.read_bytes() == b"half a summ"  # not ours: left as it was


def test_threads_writing_at_once_never_share_a_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(50):
                atomic_write_bytes(target, f"{n}:{i}\n".encode() * 100)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = set(target.read_text().splitlines())
    assert len(lines) == 1  # one writer's whole content, never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_summaries_are_fsynced_and_state_snapshots_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """state.json is rewritten up to ten times a second and a reader that cannot parse it falls
    back to summary.json: an fsync each time bought nothing and cost every small run ~1 ms."""
    from agentos.rundir.state import StateWriter

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    atomic_write_bytes(tmp_path / "summary.json", b"{}\n")
    assert len(synced) == 1
    writer = StateWriter(tmp_path, "run", 0.0)
    writer.write({"phase": "running"})
    writer.write({"phase": "done"})
    assert len(synced) == 1
    assert '"phase": "done"' in (tmp_path / "state.json").read_text()
