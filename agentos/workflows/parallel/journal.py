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
    """Both logs are plain O_APPEND descriptors written with one os.write per record: the record
    is in the kernel (it survives our SIGKILL) the moment the attempt is recorded, and concurrent
    appends cannot interleave inside a record."""

    _FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC

    def __init__(self, run_dir: Path, command_name: str) -> None:
        self._command_name = command_name
        self._jsonl = os.open(run_dir / "journal.jsonl", self._FLAGS, 0o644)
        self._joblog = os.open(run_dir / "joblog.tsv", self._FLAGS, 0o644)
        if os.fstat(self._joblog).st_size == 0:
            os.write(self._joblog, JOBLOG_HEADER.encode())

    def record(self, result: AttemptResult, seq: int, *, final: bool) -> None:
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "item": result.item_id,
            "seq": seq,
            "attempt": result.attempt,
            "status": result.status,
            "started": round(result.started, 3),
            "runtime": round(result.runtime, 3),
            "exit_code": result.exit_code,
            "signal": result.signal,
            "error": result.error,
            "retry_after": result.retry_after,
            "key_label": result.key_label,
            "worker_pid": result.worker_pid,
            "command": result.command,
            "final": final,
        }
        os.write(self._jsonl, (json.dumps(entry, ensure_ascii=False) + "\n").encode())
        if result.status == INTERRUPTED:
            return
        command = result.command or f"{self._command_name} {result.item_id}"
        command = command.replace("\t", " ").replace("\n", "\\0")
        row = (
            f"{seq}\t:\t{result.started:.3f}\t{result.runtime:.3f}\t0\t0\t"
            f"{result.exit_code}\t{result.signal}\t{command}\n"
        )
        os.write(self._joblog, row.encode())

    def close(self) -> None:
        for fd in (self._jsonl, self._joblog):
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)


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
