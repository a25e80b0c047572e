"""Items that misbehave: daemonise, close their output, flood it, ignore stdin or SIGTERM."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
from support.chaos import TALLY, assert_no_orphans
from support.processes import agentos_argv, clean_env, run

from agentos.engine.output.listener import MAX_LINE

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]


def one_item(directory: Path, line: str = "x") -> Path:
    path = directory / "items.txt"
    path.write_text(line + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("daemon holding our stdout", "setsid sh -c 'sleep 30; echo late' & echo parent done"),
        (
            "daemon with its own output",
            "setsid sh -c 'exec >/dev/null 2>&1 </dev/null; sleep 30' & echo parent done",
        ),
        ("double-forked daemon", "( sh -c 'sleep 30; echo late' & ) ; echo parent done"),
    ],
)
@pytest.mark.parametrize("mode", [["-j", "2"], []], ids=["parallel", "sequential"])
def test_daemonised_grandchildren_do_not_hang_or_outlive_the_run(
    tmp_path: Path, name: str, script: str, mode: list[str]
) -> None:
    t0 = time.monotonic()
    done = run(
        agentos_argv("run", *mode, "--items", str(one_item(tmp_path)), "--", "sh", "-c", script),
        cwd=tmp_path,
        timeout=30,
    )
    TALLY["hostile item cases"] += 1
    assert time.monotonic() - t0 < 10, "the run waited for the daemon"
    assert done.returncode == 0, done.stderr
    assert "parent done" in done.stdout and "late" not in done.stdout
    assert_no_orphans()


def test_an_item_that_closes_its_stdout_early(tmp_path: Path) -> None:
    done = run(
        agentos_argv(
            "run",
            "-j",
            "1",
            "--items",
            str(one_item(tmp_path)),
            "--",
            "sh",
            "-c",
            "exec 1>&-; sleep 0.2; echo still-here >&2",
        ),
        cwd=tmp_path,
    )
    TALLY["hostile item cases"] += 1
    assert done.returncode == 0
    assert "[item-1] still-here" in done.stderr


def test_an_item_that_reads_stdin_gets_eof_not_a_hang(tmp_path: Path) -> None:
    for mode in (["-j", "1"], []):
        done = run(
            agentos_argv(
                "run",
                *mode,
                "--timeout",
                "20",
                "--items",
                str(one_item(tmp_path)),
                "--",
                "sh",
                "-c",
                "read line; echo got:$line; cat; echo eof",
            ),
            cwd=tmp_path,
            timeout=30,
        )
        TALLY["hostile item cases"] += 1
        assert done.returncode == 0
        assert done.stdout.rstrip().endswith("eof")


def test_an_item_that_ignores_sigterm_is_still_timed_out(tmp_path: Path) -> None:
    t0 = time.monotonic()
    done = run(
        agentos_argv(
            "run",
            "-j",
            "1",
            "--timeout",
            "1",
            "--retries",
            "0",
            "--items",
            str(one_item(tmp_path)),
            "--",
            "sh",
            "-c",
            "trap '' TERM; sleep 60 & trap '' TERM; wait",
        ),
        cwd=tmp_path,
    )
    TALLY["hostile item cases"] += 1
    assert done.returncode == 1 and "timeout" in done.stderr
    assert time.monotonic() - t0 < 8
    assert_no_orphans()


def test_an_item_that_forks_many_children(tmp_path: Path) -> None:
    done = run(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--items",
            str(one_item(tmp_path)),
            "--",
            "sh",
            "-c",
            "for i in $(seq 40); do sleep 30 & done; echo forked",
        ),
        cwd=tmp_path,
    )
    TALLY["hostile item cases"] += 1
    assert done.returncode == 0 and "forked" in done.stdout
    assert_no_orphans()


def test_50_mb_without_a_newline_streams_in_bounded_memory(tmp_path: Path) -> None:
    size = 50_000_000
    proc = subprocess.Popen(
        agentos_argv(
            "run",
            "-j",
            "1",
            "--run-dir",
            str(tmp_path / "run"),
            "--items",
            str(one_item(tmp_path)),
            "--",
            "sh",
            "-c",
            f"head -c {size} /dev/zero | tr '\\0' x",
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    peak = 0.0
    received = bytearray()

    def read() -> None:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    me = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, me.memory_info().rss / 2**20)
        except psutil.Error:
            break
        time.sleep(0.02)
    reader.join(timeout=60)
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    TALLY["hostile item cases"] += 1
    assert proc.returncode == 0, stderr[-1000:]
    lines = bytes(received).split(b"\n")[:-1]
    assert all(line.startswith(b"[item-1] ") for line in lines)
    assert all(len(line) <= MAX_LINE + len(b"[item-1] ") for line in lines)
    assert sum(len(line) - len(b"[item-1] ") for line in lines) == size
    assert peak < 150, f"the parent grew to {peak:.0f} MB for a 50 MB line"
    log = tmp_path / "run" / "logs" / "item-1.log"
    with open(log, "rb") as f:
        header = f.readline()  # the attempt's header line
    assert header.startswith(b"==> item-1 attempt 1, started ")
    # the same pieces, one per line
    assert log.stat().st_size == len(header) + size + len(lines)
