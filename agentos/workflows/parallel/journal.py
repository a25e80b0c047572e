"""The run directory and its records.

    <run-dir>/
      journal.jsonl   one JSON record per attempt, appended and flushed as the attempt ends
      joblog.tsv      the same, in GNU parallel's --joblog columns (interrupted attempts get no
                      row, as in parallel, so a resume reruns them)
      summary.json    written atomically at the end
      logs/<id>.log   each item's output, unprefixed (parallel mode)
      items/<id>/     each item's private state (audit trails, scratch files)
      .lock           held while a run uses the directory

Resume (`--resume RUN_DIR`) skips every item whose journal has a `done` record. A journal cut
short by a kill ends in at most one partial line, which is ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from agentos.errors import ConfigError
from agentos.workflows.parallel.attempt import DONE, INTERRUPTED, AttemptResult

JOBLOG_HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


def default_run_dir(command: str, root: Path = Path(".agentos/runs")) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = root / f"{stamp}-{command}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{command}-{n}"
    return candidate


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory, fsync, rename: readers see the old file or
    the whole new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class RunDir:
    """A run directory, created and locked for the duration of a run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[str] | None = None

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def open(self) -> RunDir:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / ".lock", "a+")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise ConfigError(f"cannot create run directory {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(
                f"run directory {self.path} is in use by another agentos run; wait for it or "
                "choose another --run-dir"
            ) from None
        return self

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


class Journal:
    def __init__(self, run_dir: Path, command_name: str) -> None:
        self._command_name = command_name
        self._jsonl = open(run_dir / "journal.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        joblog_path = run_dir / "joblog.tsv"
        new = not joblog_path.exists() or joblog_path.stat().st_size == 0
        self._joblog = open(joblog_path, "a", encoding="utf-8")  # noqa: SIM115
        if new:
            self._joblog.write(JOBLOG_HEADER)
            self._joblog.flush()

    def record(self, result: AttemptResult, seq: int, *, final: bool) -> None:
        entry: dict[str, Any] = {"ts": round(time.time(), 3), "item": result.item_id, "seq": seq}
        entry.update(asdict(result))
        entry.pop("item_id")
        entry["started"] = round(result.started, 3)
        entry["runtime"] = round(result.runtime, 3)
        entry["final"] = final
        self._jsonl.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._jsonl.flush()
        if result.status == INTERRUPTED:
            return
        command = result.command or f"{self._command_name} {result.item_id}"
        command = command.replace("\t", " ").replace("\n", "\\0")
        self._joblog.write(
            f"{seq}\t:\t{result.started:.3f}\t{result.runtime:.3f}\t0\t0\t"
            f"{result.exit_code}\t{result.signal}\t{command}\n"
        )
        self._joblog.flush()

    def close(self) -> None:
        for f in (self._jsonl, self._joblog):
            with contextlib.suppress(OSError):
                f.flush()
                os.fsync(f.fileno())
            f.close()


def read_journal(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "journal.jsonl"
    records: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(line)
                    if isinstance(value, dict):
                        records.append(value)
    except FileNotFoundError:
        pass
    return records


def done_item_ids(run_dir: Path) -> set[str]:
    if not (run_dir / "journal.jsonl").is_file():
        raise ConfigError(
            f"{run_dir} is not an agentos run directory (no journal.jsonl); "
            "pass the directory a previous run printed"
        )
    return {str(r.get("item")) for r in read_journal(run_dir) if r.get("status") == DONE}
