"""--backend dask on a LocalCluster of 2 worker processes: the same results as loky, keys
coordinated by an actor, output streamed and prefixed, worker loss and Ctrl+C handled; on a
cluster started apart from agentos: the environment items get."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from support.processes import (
    PYTHON,
    Live,
    agentos_argv,
    clean_env,
    cmdline_of,
    run,
    running,
    tagged_pids,
    wait_until_gone,
)
from support.rundir import journal

from agentos.rundir.status import status_data

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


def _no_headers(log: str) -> list[str]:
    """A log's lines without the attempt headers (their start times differ between runs)."""
    return [line for line in log.splitlines() if not line.startswith("==> ")]


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
        assert sorted(_no_headers(dask_log)) == sorted(
            _no_headers(
                (loky_dir / "logs" / f"item-{n}.log")
                .read_text()
                .replace("key-1", "key-2")
                .replace("key-2", dask_log.split("key=[")[1][:5])
            )
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
        if "multiprocessing-fork" in " ".join(cmdline_of(p))
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


def watch_states(
    live: Live, run_dir: Path, until: Callable[[], bool], timeout: float = 60
) -> list[str]:
    """The states `agentos status` reports of a run, each once, in order, until `until()`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        if (run_dir / "state.json").exists():
            state = status_data(run_dir)["state"]
            if not seen or seen[-1] != state:
                seen.append(state)
        live._pump(0.02)
    return seen


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
    # `agentos status` at each phase: starting while the local cluster comes up (seconds), then
    # running, then draining after the Ctrl+C
    states = watch_states(live, tmp_path / "run", until=lambda: live.out.count(b"start") >= 2)
    assert states[0] == "starting" and states[-1] == "running", states
    live.interrupt(signal.SIGINT)
    live.wait_for("stopping: waiting for 2 running items", stream="err", timeout=10)
    assert status_data(tmp_path / "run")["state"] == "draining"
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
    assert terminated.stderr.count("terminating") == 1, terminated.stderr
    assert wait_until_gone(tagged_pids, timeout=5) == []
    assert wait_until_gone(lambda: running("sleep 60"), timeout=5) == []


ATTEMPT_PROCESS = "agentos.engine.backends.dask_worker"


def test_second_ctrl_c_ends_the_items_of_an_attempt_process_that_cannot_run(
    tmp_path: Path,
) -> None:
    """The race behind a `sleep 60` that outlived a second Ctrl+C: the item's commands live in
    sessions of their own, which only the attempt process knows, and the task SIGKILLed it half
    a second after its SIGTERM. On a busy machine the attempt process is not scheduled in that
    time; here it is stopped, which is the same from the outside, only certain."""
    items, _ = setup_files(tmp_path, 4)
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
            "echo start $0; sleep 60 & sleep 60",
        ),
        tmp_path,
    )
    live.wait_for("start", count=2, timeout=60)
    live.interrupt(signal.SIGINT)
    live.wait_for("stopping", stream="err", timeout=10)
    attempts = running(ATTEMPT_PROCESS)
    assert len(attempts) == 2
    for pid in attempts:
        os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    live.interrupt(signal.SIGINT)
    terminated = live.finish(timeout=60)
    assert terminated.returncode == 130
    assert time.monotonic() - t0 < 15
    assert wait_until_gone(lambda: running("sleep 60"), timeout=5) == []
    assert wait_until_gone(lambda: running(ATTEMPT_PROCESS), timeout=5) == []
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert sorted(i["status"] for i in summary["items"]).count("interrupted") == 2


def test_dask_needs_parallel_and_the_scheduler_needs_dask(tmp_path: Path) -> None:
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


def test_an_unreachable_scheduler_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    items, _ = setup_files(tmp_path, 2)
    for address, line in [
        (
            "tcp://127.0.0.1:1",
            "agentos: error: cannot reach the Dask scheduler tcp://127.0.0.1:1 (no answer "
            "within 5 s); start it or check --scheduler",
        ),
        (
            "nonsense",
            "agentos: error: --scheduler 'nonsense' is not a Dask scheduler address (missing "
            "port number in address 'nonsense'); give it as tcp://host:8786",
        ),
    ]:
        done = run(
            agentos_argv(
                "run",
                "--backend",
                "dask",
                "--scheduler",
                address,
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
        assert done.stderr.splitlines() == [line]
        assert done.stdout == ""  # no summary of items that never had a chance
        assert not (tmp_path / ".agentos").exists()  # no run directory
        assert done.seconds < 15  # a bounded connect, not distributed's 30 s default


@contextlib.contextmanager
def separate_cluster(tmp_path: Path, hidden: Path | None = None) -> Iterator[str]:
    """A scheduler and a worker started apart from agentos, as on another machine: they have an
    environment of their own, and nothing of agentos's reaches them by inheritance. `hidden`: a
    folder the worker does not see (an empty filesystem mounted over it in a mount namespace of
    its own), as a machine that does not share it."""
    # a file of this cluster's own: a worker must never read a dead cluster's address
    scheduler_file = tmp_path / f"scheduler-{os.urandom(4).hex()}.json"
    scheduler = Live(
        [
            PYTHON,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        ],
        tmp_path,
    )
    apart: list[str] = []
    if hidden is not None:
        apart = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 f'mount -t tmpfs none "{hidden}" && exec "$@"', "sh"]  # fmt: skip
    worker = Live(
        [
            *apart,
            PYTHON,
            "-m",
            "distributed.cli.dask_worker",
            "--scheduler-file",
            str(scheduler_file),
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--no-dashboard",
            "--no-nanny",  # one process less to start on a busy machine
            # its scratch space of its own: dask purges what it takes for stale in the shared one
            "--local-directory",
            str(tmp_path / "dask-worker-space"),
        ],
        tmp_path,
    )
    try:
        worker.wait_for("Registered to", stream="err", timeout=60)
        yield json.loads(scheduler_file.read_text())["address"]
    finally:
        for live in (worker, scheduler):  # their own sessions: everything they started
            with contextlib.suppress(ProcessLookupError):
                live.interrupt(signal.SIGKILL)
            live.finish(timeout=30)


SHOW_ENV = (
    'echo "latency=${AGENTOS_MOCK_LATENCY-unset} token=${MY_TOKEN-unset} '
    "region=${CLOUD_REGION-unset},${CLOUD_ZONE-unset} other=${OTHER-unset} "
    'credentials=${AGENTOS_CREDENTIALS-unset} leased=${AGENTOS_API_KEY:+yes}"'
)


def test_items_on_a_separate_cluster_get_the_forwarded_environment(tmp_path: Path) -> None:
    items, _ = setup_files(tmp_path, 2)
    env = clean_env(
        AGENTOS_MOCK_LATENCY="0.25",
        MY_TOKEN="t0ken",
        CLOUD_REGION="eu",
        CLOUD_ZONE="b",
        OTHER="not named",
        AGENTOS_CREDENTIALS=KEYS[0],
    )
    with separate_cluster(tmp_path) as address:
        done = run(
            agentos_argv(
                "run",
                "--backend",
                "dask",
                "--scheduler",
                address,
                "-j",
                "1",
                "--env",
                "MY_TOKEN",
                "--env",
                "CLOUD_*",
                "--run-dir",
                str(tmp_path / "run"),
                "--items",
                str(items),
                "--",
                "sh",
                "-c",
                SHOW_ENV,
            ),
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(done.stdout.splitlines()) == [
        f"[item-{n}] latency=0.25 token=t0ken region=eu,b other=unset credentials=unset leased=yes"
        for n in (1, 2)
    ]


def test_keys_reach_items_on_workers_only_leased(tmp_path: Path) -> None:
    """A local cluster's workers inherit agentos's environment: AGENTOS_CREDENTIALS (every key)
    and a stale leased-key variable must still not reach the items."""
    items, _ = setup_files(tmp_path, 2)
    done = run(
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
            'echo "credentials=${AGENTOS_CREDENTIALS-unset} key=$AGENTOS_API_KEY"',
        ),
        cwd=tmp_path,
        env=clean_env(AGENTOS_CREDENTIALS=",".join(KEYS), AGENTOS_API_KEY="stale"),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = sorted(done.stdout.splitlines())
    assert [line.split(" key=")[0] for line in lines] == [
        "[item-1] credentials=unset",
        "[item-2] credentials=unset",
    ]
    assert all(line.split(" key=")[1] in ("[key-1]", "[key-2]") for line in lines)


def test_forwarding_a_key_or_the_whole_environment_is_refused(tmp_path: Path) -> None:
    items, keys = setup_files(tmp_path, 1)
    refused = [
        (
            ["--credentials-file", str(keys), "--env", "LEAK"],
            {"LEAK": KEYS[1]},
            "agentos: error: --env LEAK holds a configured API key (key-2); keys reach items "
            "only leased, through the key coordinator (as $AGENTOS_API_KEY): do not forward it",
        ),
        (
            ["--credentials-file", str(keys)],
            {"AGENTOS_EXTRA": f"Bearer {KEYS[0]}"},
            "agentos: error: AGENTOS_EXTRA (AGENTOS_* settings go to the workers) holds a "
            "configured API key (key-1); keys reach items only leased, through the key "
            "coordinator (as $AGENTOS_API_KEY): unset it",
        ),
        (
            ["--env", "AGENTOS_CREDENTIALS"],
            {},
            "agentos: error: --env AGENTOS_CREDENTIALS: agentos never forwards "
            "AGENTOS_CREDENTIALS; keys reach items only leased, through the key coordinator "
            "(as $AGENTOS_API_KEY), and the run's own variables are set on the workers",
        ),
        (
            ["--env", "*"],
            {},
            "agentos: error: --env '*': give a variable name, or a prefix ending in * "
            "(ANTHROPIC_*); the whole environment is never forwarded",
        ),
    ]
    for args, extra, line in refused:
        done = run(
            agentos_argv(
                "run", "--backend", "dask", "-j", "2", *args, "--items", str(items), "--", "true"
            ),
            cwd=tmp_path,
            env=clean_env(**extra),
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines()[-1:] == [line]
        assert "Traceback" not in done.stderr
        for key in KEYS:
            assert key not in done.stdout + done.stderr
        assert not (tmp_path / ".agentos").exists()
    # loky workers inherit the environment: --env is accepted there and changes nothing
    done = run(
        agentos_argv("run", "--env", "MY_TOKEN", "--items", str(items), "--", "true"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr


def test_http_agents_take_keys_per_call_from_the_actor(tmp_path: Path) -> None:
    pytest.importorskip("httpx")
    from support.keys import keys_file
    from support.sim import repo_with_briefs, requirements_argv

    from bench.provider_sim import Org, ProviderSim

    repo = repo_with_briefs(tmp_path, 4)
    keys = {"sk-dask-call-a-000000": "a"}
    with ProviderSim([Org("a", rpm=600)], keys, latency=0.05) as sim:
        done = run(
            requirements_argv(
                repo,
                sim.base_url,
                keys_file(tmp_path, "sk-dask-call-a-000000\n"),
                "--backend",
                "dask",
                "-j",
                "2",
                "-v",
            ),
            cwd=repo,
            timeout=150,
        )
        calls = sim.stats()["keys"]["sk-dask-call-a-000000"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert calls["ok"] == 8 and calls["refused_429"] == 0  # two calls a brief, paced
    # one key, two items at once: keys are per call, so the key does not cap the workers
    assert "only 1 key" not in done.stderr and "4 items, 2 workers" in done.stderr
    summary = json.loads(
        next((repo / ".agentos" / "runs").iterdir()).joinpath("summary.json").read_text()
    )
    assert summary["keys"][0]["calls"] == 8  # every call was granted by the key actor
    assert "sk-dask-call" not in done.stdout + done.stderr


def test_implement_on_a_cluster_needs_workers_that_see_the_repository(tmp_path: Path) -> None:
    """Worktrees are made where the workers run: a worker that does not see the repository at
    its path (another machine, no shared filesystem) is refused before any item runs; one that
    does implements the LLD on its branch."""
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a mount namespace here (unshare --mount)")
    from support.repos import make_repo

    shared = tmp_path / "shared"
    shared.mkdir()
    repo = make_repo(shared, {"LLD-1.md": "One"})
    argv = ["implement", "--repo", str(repo), "--backend", "dask", "-j", "1", "--test-cmd", "true"]
    with separate_cluster(tmp_path, hidden=shared) as address:
        blind = run(agentos_argv(*argv, "--scheduler", address), cwd=tmp_path, timeout=120)
    assert blind.returncode == 2, blind.stderr[-2000:]
    assert "1 Dask worker (tcp://127.0.0.1:" in blind.stderr
    assert f"cannot see {repo} at that path" in blind.stderr
    assert blind.stderr.splitlines()[-1].startswith("agentos: error: 1 Dask worker")
    assert "Traceback" not in blind.stderr and not (repo / ".agentos" / "runs").exists()
    with separate_cluster(tmp_path) as address:
        done = run(agentos_argv(*argv, "--scheduler", address), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 item: 1 done (1 verified)" in done.stderr
    assert list((repo / ".agentos").glob(".shared-check-*")) == []


def _scheduler_port(pid: int) -> int:
    """The port of the scheduler agentos runs in its own process: the one of its listening
    ports its workers are connected to."""
    listening = {
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            for c in child.net_connections(kind="tcp"):
                if c.raddr and c.raddr.port in listening:
                    return int(c.raddr.port)
    raise AssertionError(f"no worker is connected to a port of {pid}: {sorted(listening)}")


def test_the_local_cluster_turns_away_clients_without_its_certificate(tmp_path: Path) -> None:
    """Any local user could connect a Client to the local cluster's port, run code on its
    workers and in agentos itself, and read every key from the actor."""
    import distributed

    items, keys = setup_files(tmp_path, 2)
    live = Live(
        agentos_argv(
            "run",
            "--backend",
            "dask",
            "-j",
            "2",
            "--credentials-file",
            str(keys),
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "echo started $0; sleep 4",
        ),
        tmp_path,
    )
    live.wait_for("started", count=2, timeout=120)
    port = _scheduler_port(live.pid)
    with pytest.raises((OSError, TimeoutError)):
        client = distributed.Client(f"tcp://127.0.0.1:{port}", timeout="3s")
        client.close()  # reached only if it connected
    # nor does its HTTP server tell anything but its health
    http = [
        c.laddr.port
        for c in psutil.Process(live.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port != port
    ]
    for other in http:
        with contextlib.suppress(OSError):
            conn = socket.create_connection(("127.0.0.1", other), timeout=3)
            conn.sendall(b"GET /info/main/workers.html HTTP/1.0\r\n\r\n")
            answer = conn.recv(200)
            conn.close()
            assert b" 404 " in answer.split(b"\r\n")[0], (other, answer)
    done = live.finish(timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_item_output_leaves_the_worker_redacted(tmp_path: Path) -> None:
    """The scheduler keeps the events it relays: a key an item prints must already be
    replaced when the worker sends it, even one printed in two writes."""
    import distributed

    items, keys = setup_files(tmp_path, 2)
    item = (
        'echo "whole=$AGENTOS_API_KEY"; printf "halves=%s" "${AGENTOS_API_KEY%????????}"; '
        'sleep 0.3; printf "%s\\n" "${AGENTOS_API_KEY#????????????????}"'
    )
    with separate_cluster(tmp_path) as address:
        done = run(
            agentos_argv(
                "run",
                "--backend",
                "dask",
                "--scheduler",
                address,
                "-j",
                "1",
                "--credentials-file",
                str(keys),
                "--items",
                str(items),
                "--",
                "sh",
                "-c",
                item,
            ),
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        with distributed.Client(address, timeout="10s") as client:
            topics = client.run_on_scheduler(
                lambda dask_scheduler: [
                    t for t in dask_scheduler.get_events() if t.startswith("agentos-output-")
                ]
            )
            events = {topic: client.get_events(topic) for topic in topics}
    sent = b"".join(
        message["d"]
        for topic, found in events.items()
        if topic.startswith("agentos-output-")
        for _, message in found
        if "d" in message
    )
    assert sent.count(b"whole=[key-") == 2 and sent.count(b"halves=[key-") == 2, sent
    for key in KEYS:
        assert key.encode() not in sent and key[-8:].encode() not in sent
    assert "is not a tls:// address" in done.stderr  # a plain scheduler is said to be one
