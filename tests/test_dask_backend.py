"""--backend dask on a LocalCluster of 2 worker processes: the same results as loky, keys
coordinated by an actor, output streamed and prefixed, worker loss and Ctrl+C handled."""

from __future__ import annotations

import itertools
import json
import signal
import time
from pathlib import Path

import psutil
import pytest

from conftest import Live, agentos_argv, run, running, tagged_pids, wait_until_gone

pytest.importorskip("distributed")
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

KEYS = ("sk-dask-key-one-00000001", "sk-dask-key-two-00000002")


def setup_files(tmp_path: Path, count: int) -> tuple[Path, Path]:
    items = tmp_path / "items.txt"
    items.write_text("".join(f"{n}\n" for n in range(count)))
    keys = tmp_path / "keys.txt"
    keys.write_text("".join(f"{k}\n" for k in KEYS))
    keys.chmod(0o600)
    return items, keys


ITEM = ["sh", "-c", "echo start $0; echo key=$AGENTOS_API_KEY; sleep 0.2; echo done $0 >&2"]


def journal(run_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


def test_same_outputs_and_journal_as_loky(tmp_path: Path) -> None:
    items, keys = setup_files(tmp_path, 6)
    results = {}
    for backend in ("loky", "dask"):
        run_dir = tmp_path / backend
        done = run(
            agentos_argv(
                "run",
                "--backend",
                backend,
                "-j",
                "2",
                "--credentials-file",
                str(keys),
                "--run-dir",
                str(run_dir),
                "--items",
                str(items),
                "--",
                *ITEM,
            ),
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results[backend] = (done, run_dir)
    (loky, loky_dir), (dask, dask_dir) = results["loky"], results["dask"]
    out = sorted(
        line.replace("key-1", "key-N").replace("key-2", "key-N")
        for line in dask.stdout.splitlines()
    )
    assert out == sorted(
        line.replace("key-1", "key-N").replace("key-2", "key-N")
        for line in loky.stdout.splitlines()
    )
    assert "[item-3] start 2" in dask.stdout and "[item-3] key=[key-" in dask.stdout
    assert "[item-6] done 5" in dask.stderr
    for key in KEYS:  # redacted on the way back from the cluster too
        assert key not in dask.stdout + dask.stderr
    shape = sorted(
        (r["item"], r["attempt"], r["status"], r["exit_code"]) for r in journal(dask_dir)
    )
    assert shape == sorted(
        (r["item"], r["attempt"], r["status"], r["exit_code"]) for r in journal(loky_dir)
    )
    for n in range(1, 7):
        dask_log = (dask_dir / "logs" / f"item-{n}.log").read_text()
        assert sorted(dask_log.splitlines()) == sorted(
            (loky_dir / "logs" / f"item-{n}.log")
            .read_text()
            .replace("key-1", "key-2")
            .replace("key-2", dask_log.split("key=[")[1][:5])
            .splitlines()
        )
    summary = json.loads((dask_dir / "summary.json").read_text())
    assert {k["state"] for k in summary["keys"]} == {"free"}
    assert sum(k["leases"] for k in summary["keys"]) == 6
    spans = sorted(
        (r["key_label"], r["started"], r["started"] + r["runtime"]) for r in journal(dask_dir)
    )
    for (k1, _, end1), (k2, start2, _) in itertools.pairwise(spans):
        assert k1 != k2 or start2 >= end1 - 0.001  # never two items on one key at once
    assert wait_until_gone(tagged_pids, timeout=5) == []


def dask_workers(parent: int) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(parent).children()
        if "multiprocessing-fork" in " ".join(p.cmdline())
    ]


def test_a_killed_dask_worker_reruns_its_item_and_keys_stay_intact(tmp_path: Path) -> None:
    items, keys = setup_files(tmp_path, 6)
    run_dir = tmp_path / "run"
    live = Live(
        agentos_argv(
            "run",
            "--backend",
            "dask",
            "-j",
            "2",
            "--credentials-file",
            str(keys),
            "--run-dir",
            str(run_dir),
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "echo start $0; sleep 1; echo end $0",
        ),
        tmp_path,
    )
    live.wait_for("start", count=2, timeout=60)
    workers = dask_workers(live.pid)
    busy = [w for w in workers if any("dask_worker" in " ".join(c.cmdline()) for c in w.children())]
    (busy or workers)[0].kill()
    done = live.finish(timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {line for line in done.stdout.splitlines() if " end " in line} == {
        f"[item-{n + 1}] end {n}" for n in range(6)
    }
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {i["status"] for i in summary["items"]} == {"done"}
    assert [k["state"] for k in summary["keys"]] == ["free", "free"]
    assert wait_until_gone(tagged_pids, timeout=5) == []


def test_first_ctrl_c_drains_second_terminates(tmp_path: Path) -> None:
    items, _ = setup_files(tmp_path, 6)
    live = Live(
        agentos_argv(
            "run",
            "--backend",
            "dask",
            "-j",
            "2",
            "--run-dir",
            str(tmp_path / "run"),
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "echo start $0; sleep 1.5; echo end $0",
        ),
        tmp_path,
    )
    live.wait_for("start", count=2, timeout=60)
    live.interrupt(signal.SIGINT)
    live.wait_for("stopping: waiting for 2 running items", stream="err", timeout=10)
    drained = live.finish(timeout=60)
    assert drained.returncode == 130
    assert drained.stdout.count("end") == 2  # the running items finished, no new one started
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert sorted(i["status"] for i in summary["items"]).count("not run") == 4

    live = Live(
        agentos_argv(
            "run",
            "--backend",
            "dask",
            "-j",
            "2",
            "--run-dir",
            str(tmp_path / "run2"),
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "echo start $0; sleep 60 & sleep 60",
        ),
        tmp_path,
    )
    live.wait_for("start", count=2, timeout=60)
    live.interrupt(signal.SIGINT)
    live.wait_for("stopping", stream="err", timeout=10)
    t0 = time.monotonic()
    live.interrupt(signal.SIGINT)
    terminated = live.finish(timeout=60)
    assert terminated.returncode == 130
    assert time.monotonic() - t0 < 15
    assert wait_until_gone(tagged_pids, timeout=5) == []
    assert wait_until_gone(lambda: running("sleep 60"), timeout=5) == []


def test_dask_needs_parallel_and_a_reachable_scheduler(tmp_path: Path) -> None:
    items, _ = setup_files(tmp_path, 1)
    done = run(
        agentos_argv("run", "--backend", "dask", "--items", str(items), "--", "true"), cwd=tmp_path
    )
    assert done.returncode == 2 and "give --parallel N as well" in done.stderr
    done = run(
        agentos_argv(
            "run",
            "--scheduler",
            "tcp://127.0.0.1:9",
            "-j",
            "2",
            "--items",
            str(items),
            "--",
            "true",
        ),
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "--scheduler only applies to --backend dask" in done.stderr
    done = run(
        agentos_argv(
            "run",
            "--backend",
            "dask",
            "--scheduler",
            "tcp://127.0.0.1:9",
            "-j",
            "2",
            "--items",
            str(items),
            "--",
            "true",
        ),
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert "cannot reach the Dask scheduler tcp://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr
