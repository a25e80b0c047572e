"""Limits a user sets for an overnight run: data memory per item process, log size per item."""

from __future__ import annotations

import sys
from pathlib import Path

from support.processes import agentos_argv, items_file, only_run_dir, run

GREEDY = (
    f"{sys.executable} -c "
    "'import sys; b = bytearray(int(sys.argv[1]) << 20); print(\"got\", len(b) >> 20)'"
)


def test_item_memory_stops_a_runaway_item_and_spares_the_others(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["10", "400"])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--retries",
            "0",
            "--item-memory",
            "100M",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            GREEDY + ' "$0"',
        ),
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "[item-1] got 10" in done.stdout
    assert "[item-2] got" not in done.stdout
    assert "MemoryError" in done.stderr
    # the command line recorded is the user's, not the wrapper that set the limit
    joblog = (only_run_dir(tmp_path) / "joblog.tsv").read_text()
    assert "ulimit" not in joblog


def test_item_log_size_keeps_the_logs_small_and_the_terminal_whole(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["a"])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "1",
            "--item-log-size",
            "1K",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            'for n in $(seq 500); do echo "line $n of $0"; done',
        ),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("[item-1] line ") == 500
    log = (only_run_dir(tmp_path) / "logs" / "item-1.log").read_bytes()
    assert len(log) <= 1024 + 200
    assert log.endswith(
        b"log cut at --item-log-size 1024 bytes; the rest went to the terminal only <==\n"
    )
    assert b"line 1 of a\n" in log and b"line 500 " not in log


def test_sizes_are_checked_before_anything_runs(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["a"])
    done = run(
        agentos_argv("run", "--item-memory", "lots", "--items", str(items), "--", "true"),
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "'lots' is not a size; give it as 500M, 2G or a number of bytes" in done.stderr
    assert not (tmp_path / ".agentos").exists()
