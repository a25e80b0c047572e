"""Keys and notification tokens given in the environment reach no process agentos starts: not
the workers, the key server, resource trackers, nor the items (which get their lease only), and
not even the parent's own /proc/<pid>/environ once they are read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import Live, agentos_argv, clean_env, items_file, scoped_processes

from agentos.governor.credentials import take_secret_environment

KEYS = ("sk-test-FIRSTKEYFIRSTKEY01", "sk-test-SECONDKEYSECONDKEY2")
TOKEN = "json://127.0.0.1:9/notify-TOKEN-abcdef"


def _environs() -> dict[int, bytes]:
    found = {}
    for proc in scoped_processes():
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                found[proc.pid] = f.read()
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    "parallel",
    [["-j", "2"], [], ["--backend", "dask", "-j", "2"]],
    ids=["parallel", "sequential", "dask"],
)
def test_no_process_of_a_run_holds_the_keys_or_the_notify_urls(
    tmp_path: Path, parallel: list[str]
) -> None:
    if "dask" in parallel:
        pytest.importorskip("distributed")
    items = items_file(tmp_path / "items.txt", ["a", "b"])
    item = 'echo "lease ${AGENTOS_API_KEY:+given}"; echo ready; sleep 3'
    live = Live(
        agentos_argv("run", *parallel, "--items", str(items), "--", "sh", "-c", item),
        cwd=tmp_path,
        env=clean_env(AGENTOS_CREDENTIALS=",".join(KEYS), AGENTOS_NOTIFY=TOKEN),
    )
    live.wait_for("ready", count=2 if parallel else 1, timeout=120)
    environs = _environs()
    done = live.finish()
    assert done.returncode == 0, done.stderr
    assert "lease given" in done.stdout  # the item still gets its leased key
    assert len(environs) >= (4 if parallel else 2)  # parent, workers, key server, items
    leases = 0
    for pid, environ in environs.items():
        entries = environ.split(b"\0")
        # an item's own lease is the one key it may hold
        leases += sum(e.startswith(b"AGENTOS_API_KEY=sk-test-") for e in entries)
        rest = b"\0".join(e for e in entries if not e.startswith(b"AGENTOS_API_KEY="))
        for secret in (*KEYS, TOKEN):
            assert secret.encode() not in rest, f"{secret} in the environment of {pid}"
    assert leases >= 1


def test_the_initial_environment_block_is_wiped_for_forked_children(tmp_path: Path) -> None:
    """What /proc/<pid>/environ shows is the block the kernel set up at exec, which a forked
    worker inherits as it is: removing the variable from os.environ does not reach it."""
    code = (
        "import os, sys\n"
        "from agentos.governor.credentials import take_secret_environment\n"
        "taken = take_secret_environment()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    data = open('/proc/self/environ', 'rb').read()\n"
        "    os._exit(3 if b'sk-wiped' in data else 0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(sorted(taken), os.waitstatus_to_exitcode(status),\n"
        "      b'sk-wiped' in open('/proc/self/environ', 'rb').read(), 'KEEP' in os.environ)\n"
    )
    env = clean_env(AGENTOS_CREDENTIALS="sk-wiped-1", AGENTOS_NOTIFY="x://sk-wiped-2", KEEP="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["['AGENTOS_CREDENTIALS',", "'AGENTOS_NOTIFY']", "0", "False", "True"]


def test_take_secret_environment_on_a_mapping_leaves_the_process_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTOS_CREDENTIALS", "ours")
    environ = {"AGENTOS_CREDENTIALS": "k", "OTHER": "1"}
    assert take_secret_environment(environ) == {"AGENTOS_CREDENTIALS": "k"}
    assert environ == {"OTHER": "1"}
    assert os.environ["AGENTOS_CREDENTIALS"] == "ours"


def test_a_notification_url_an_item_prints_is_redacted_like_a_key(tmp_path: Path) -> None:
    secret_file = tmp_path / "found.txt"
    secret_file.write_text(f"found {TOKEN} somewhere\n")
    items = items_file(tmp_path / "items.txt", ["a"])
    live = Live(
        agentos_argv(
            "run", "-j", "1", "--items", str(items), "--", "sh", "-c", f"cat {secret_file}"
        ),
        cwd=tmp_path,
        env=clean_env(AGENTOS_NOTIFY=TOKEN),
    )
    done = live.finish()
    assert done.returncode == 0, done.stderr
    assert "[item-1] found [notify-url] somewhere" in done.stdout
    (log,) = (tmp_path / ".agentos" / "runs").glob("*/logs/item-1.log")
    assert TOKEN not in log.read_text()
    assert TOKEN not in done.stderr
