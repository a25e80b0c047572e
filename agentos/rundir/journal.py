"""The run directory and its records.

    <run-dir>/
      journal.jsonl   one JSON record per attempt, appended and flushed as the attempt ends
      joblog.tsv      the same, in GNU parallel's --joblog columns (interrupted attempts get no
                      row, as in parallel, so a resume reruns them)
      summary.json    written atomically at the end
      state.json      the running parent's state, rewritten about once a second, for
                      `agentos status` (agentos.rundir.state)
      metrics.jsonl   a sample of counts, calls, refusals and spend whenever they change, for
                      `agentos report`
      report.html     written by `agentos report` (agentos.report)
      logs/<id>.log   each item's output, unprefixed (parallel mode)
      items/<id>/     each item's private state (audit trails, scratch files)
      usage/          what CLI agents reported of their model calls, one file per attempt
                      ($AGENTOS_USAGE_FILE, agentos.usage.report)
      run.json        what the run is (workflow, workspace, command line) and every option it
                      was started with, for --resume (agentos.run.recorded)
      .lock           held while a run uses the directory

Resume (`--resume RUN_DIR`, see `agentos.run.resume`) skips every item whose journal has a
`done` record for the same item key. A power loss or a full disk can leave the journal ending in a
partial line: before appending, `Journal` ends that line (so the next record starts on a line of
its own instead of being glued to the broken one), and `read_journal` skips and counts lines that
are not records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from agentos.beneath import Beneath, UnsafePath
from agentos.errors import ConfigError
from agentos.item.workflow import Item
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.statuses import Status

JOBLOG_HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


def default_run_dir(command: str, root: Path = Path(".agentos/runs")) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = root / f"{stamp}-{command}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{command}-{n}"
    return candidate


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o666, *, durable: bool = True) -> None:
    """Write via a temp file in the same directory, fsync, rename: readers see the old file or
    the whole new one, never half of it. `durable=False` skips the fsync: for a snapshot that
    is rewritten soon anyway, whose loss in a power cut costs nothing (state.json). The
    directory is taken as given; a link where the file goes is replaced, never written
    through. `mode` is narrowed by the umask."""
    with Beneath(path.parent, create=True) as place:
        place.write_atomic(path.name, data, mode=mode, durable=durable, replace_link=True)


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """`text` as UTF-8; characters that stand for bytes that were not UTF-8 (surrogateescape:
    a file name, an item) are written as those bytes again."""
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"), durable=durable)


#: how Python holds a byte that was not UTF-8 (surrogateescape), and any other lone surrogate
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(value: Any, **options: Any) -> str:
    """`json.dumps` that carries bytes that are not UTF-8 (a file name `r\\xe9sum\\xe9.md` is
    `r\\udce9sum\\udce9.md` to Python): a lone surrogate is written as its `\\udcXX` escape,
    which `json.loads` reads back as the same character, so an item read from a run's records
    is the item that ran. The text stays valid UTF-8; every other character is written as
    itself."""
    text = json.dumps(value, ensure_ascii=False, **options)
    if text.isascii():
        return text
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class RunDir:
    """A run directory, created and locked for the duration of a run.

    Private to the user: made 0700; an existing one (--run-dir, --resume) must belong to the
    user. Everything in it is reached without following a symlink (`place`, a Beneath): a
    reused directory may hold links planted by anyone who could write there. `confined`: the
    path is agentos's default (`.agentos/runs/...` below the working directory, which may be a
    cloned repository), so its own components are not followed either."""

    def __init__(self, path: Path, *, confined: bool = False) -> None:
        self.path = path
        self.confined = confined
        self.place: Beneath | None = None
        self._lock: int | None = None

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def open(self) -> RunDir:
        try:
            self.place = self._make()
            self._lock = self.place.open(".lock", os.O_RDWR | os.O_CREAT)
        except UnsafePath as exc:
            self.close()
            raise ConfigError(f"{exc}; choose another --run-dir") from None
        except OSError as exc:
            self.close()
            raise ConfigError(f"cannot create run directory {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise ConfigError(
                f"run directory {self.path} is in use by another agentos run; wait for it or "
                "choose another --run-dir"
            ) from None
        return self

    def _make(self) -> Beneath:
        if self.confined and not self.path.is_absolute():
            with Beneath(".") as cwd:
                place = cwd.sub(self.path, create=True, mode=0o700)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.path, 0o700)
            place = Beneath(self.path)
        owner = os.fstat(place.fd).st_uid
        if owner != os.getuid():
            place.close()
            raise ConfigError(
                f"run directory {self.path} belongs to another user (uid {owner}); agentos "
                "keeps prompts, answers and logs there: choose a --run-dir of your own"
            )
        return place

    def check_writable(self) -> None:
        """Everything a run writes here must be writable *before* any item runs: a read-only or
        immutable run directory found at the end would lose the record of paid work."""
        assert self.place is not None
        try:
            for sub in ("logs", "items", "usage"):
                self.place.makedirs(sub)
            for name in ("journal.jsonl", "joblog.tsv", "run.json", "summary.json"):
                if self.place.lstat(name) is not None:
                    os.close(self.place.open(name, os.O_WRONLY | os.O_APPEND))
            for probe in (".probe", "logs/.probe"):
                self.place.write_atomic(probe, b"", durable=False)
                self.place.unlink(probe)
        except UnsafePath as exc:
            raise ConfigError(f"{exc}; choose another --run-dir") from None
        except OSError as exc:
            where = exc.filename or self.path
            raise ConfigError(
                f"cannot write to the run directory: {where}: {exc.strerror}; "
                "fix its permissions or choose another --run-dir"
            ) from None

    def close(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
        if self.place is not None:
            self.place.close()
            self.place = None


def end_partial_line(fd: int) -> bool:
    """If the file behind `fd` does not end with a newline (a write cut short by a crash),
    append one, so the next record is a line of its own. True when it had to."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return False
    os.write(fd, b"\n")
    return True


class Journal:
    """Both logs are plain O_APPEND descriptors written with one os.write per record: the record
    is in the kernel (it survives our SIGKILL) the moment the attempt is recorded, and concurrent
    appends cannot interleave inside a record."""

    # O_RDWR, not O_WRONLY: end_partial_line reads the last byte
    _FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC

    def __init__(self, run_dir: Path, command_name: str) -> None:
        self._command_name = command_name
        with Beneath(run_dir) as place:  # never through a link planted in a reused directory
            self._jsonl = place.open("journal.jsonl", self._FLAGS)
            self._joblog = place.open("joblog.tsv", self._FLAGS)
        self.repaired = [
            name
            for name, fd in (("journal.jsonl", self._jsonl), ("joblog.tsv", self._joblog))
            if end_partial_line(fd)
        ]
        if os.fstat(self._joblog).st_size == 0:
            os.write(self._joblog, JOBLOG_HEADER.encode())

    def record(self, result: AttemptResult, item: Item, *, final: bool) -> None:
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "item": result.item_id,
            "key": item.key or item.id,
            "seq": item.seq,
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
        if result.refusal:
            entry["refusal"] = result.refusal
        if result.detail:
            entry["detail"] = result.detail
        if result.outputs:
            entry["outputs"] = result.outputs
        if result.waits:
            entry["waits"] = result.waits  # seconds waited for keys, by reason
        if result.usage:
            entry["usage"] = result.usage.to_json()  # calls, tokens, cost: by model and key
        os.write(self._jsonl, (json_text(entry) + "\n").encode())
        if result.status == Status.INTERRUPTED:
            return
        command = result.command or f"{self._command_name} {result.item_id}"
        # GNU parallel writes a command's newlines as \0 and keeps its tabs: Command is the last
        # column, so readers split a row on its first eight tabs
        command = command.replace("\n", "\\0")
        # a command that died of a signal: Exitval 0 with the Signal, as GNU parallel writes it
        # (its own --timeout kills stay -1)
        exitval = 0 if result.signal and result.status != Status.TIMEOUT else result.exit_code
        row = (
            f"{item.seq}\t:\t{result.started:.3f}\t{result.runtime:.3f}\t0\t0\t"
            f"{exitval}\t{result.signal}\t{command}\n"
        )
        os.write(self._joblog, row.encode("utf-8", "surrogateescape"))  # a command's own bytes

    def close(self) -> None:
        for fd in (self._jsonl, self._joblog):
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)


class JournalRecords(NamedTuple):
    """What a journal holds: its records, and the lines that were not records."""

    records: list[dict[str, Any]]
    corrupt_lines: list[int]  # 1-based numbers of lines that are not records


def read_journal(run_dir: Path) -> JournalRecords:
    """Every record of `<run_dir>/journal.jsonl`; lines that are not JSON objects (a write cut
    short by a crash) are skipped and counted, never fatal."""
    records: list[dict[str, Any]] = []
    corrupt: list[int] = []
    try:
        with open(run_dir / "journal.jsonl", "rb") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    value = None
                if isinstance(value, dict) and "item" in value:
                    records.append(value)
                else:
                    corrupt.append(number)
    except FileNotFoundError:
        pass
    return JournalRecords(records, corrupt)


MANIFEST = "run.json"


def write_manifest(
    run_dir: Path,
    identity: dict[str, str],
    about: dict[str, Any] | None = None,
    invocation: dict[str, Any] | None = None,
) -> None:
    """`identity`: what `--resume` compares; `about`: what the run was, for reports
    (agentos.run.about); `invocation`: the options it was started with and where
    (`params`, `cwd`: agentos.run.recorded)."""
    from agentos.version import __version__

    data = {
        **identity,
        "agentos": __version__,
        "created": round(time.time(), 3),
        **(about or {}),
        **(invocation or {}),
    }
    atomic_write_text(run_dir / MANIFEST, json_text(data, indent=2) + "\n")


def update_manifest(run_dir: Path, values: dict[str, Any]) -> None:
    """Replace some entries of run.json (a resume records the options it went on with)."""
    data = read_manifest(run_dir) or {}
    data.update(values)
    atomic_write_text(run_dir / MANIFEST, json_text(data, indent=2) + "\n")


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The identity a run directory was made for; None for directories of agentos versions
    that wrote none."""
    try:
        data = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {run_dir / MANIFEST}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{run_dir / MANIFEST} is not an agentos run manifest")
    return data
