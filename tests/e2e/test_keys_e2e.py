"""Keys through whole runs: rotation, exclusivity, cooldowns, worker death, redaction, timeouts."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from support.keys import keys_file
from support.processes import (
    Live,
    agentos_argv,
    clean_env,
    items_file,
    loky_workers,
    only_run_dir,
    run,
)
from support.rundir import journal

pytestmark = pytest.mark.timeout(120)

KEY_A = "sk-test-aaaaaaaaaaaaaaaa"
KEY_B = "sk-test-bbbbbbbbbbbbbbbb"


def overlaps(records: list[dict]) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """Pairs of attempts that held the same key at the same time."""
    found = []
    spans = [
        (r["key_label"], r["started"], r["started"] + r["runtime"], r["item"])
        for r in records
        if r["key_label"]
    ]
    for i, (key, start, end, item) in enumerate(spans):
        for other_key, other_start, other_end, other in spans[i + 1 :]:
            if key == other_key and start < other_end - 0.001 and other_start < end - 0.001:
                found.append((item, other))
    return found


def test_two_keys_four_workers_rotate_without_overlap(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(8)])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "4",
            "--credentials-file",
            str(keys_file(workdir, [KEY_A, KEY_B])),
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "sleep 0.2; echo ok $0",
        ),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    assert "using 2 workers: only 2 keys are configured (asked for 4)" in done.stderr
    records = journal(workdir)
    assert {r["key_label"] for r in records} == {"key-1", "key-2"}
    counts = [sum(r["key_label"] == k for r in records) for k in ("key-1", "key-2")]
    assert min(counts) >= 3  # neither key starves
    assert overlaps(records) == []


AGENT_429 = f"""#!/bin/sh
# a fake agent: key A is always rate limited (exit 75, with the provider's Retry-After)
if [ "$AGENTOS_API_KEY" = "{KEY_A}" ]; then
    echo "HTTP 429 Too Many Requests. Retry-After: 1" >&2
    exit 75
fi
echo "answered $1"
"""


def test_a_rate_limited_key_cools_down_and_every_item_completes(workdir: Path) -> None:
    agent = workdir / "agent.sh"
    agent.write_text(AGENT_429)
    agent.chmod(0o755)
    items = items_file(workdir / "items.txt", [str(n) for n in range(6)])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--retries",
            "0",
            "--credentials-file",
            str(keys_file(workdir, [KEY_A, KEY_B])),
            "--items",
            str(items),
            "--",
            str(agent),
        ),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(
        f"[item-{n + 1}] answered {n}" for n in range(6)
    )
    assert "key-1 rate limited; cooling for 1.0 s" in done.stderr
    records = journal(workdir)
    limited = [r for r in records if r["status"] == "rate_limited"]
    assert limited and all(r["key_label"] == "key-1" and not r["final"] for r in limited)
    assert all(r["key_label"] == "key-2" for r in records if r["status"] == "done")
    summary = json.loads((only_run_dir(workdir) / "summary.json").read_text())
    assert {i["status"] for i in summary["items"]} == {
        "done"
    }  # no retries were spent (--retries 0)


def test_all_keys_cooling_prints_the_wait_and_resumes(workdir: Path) -> None:
    marker_dir = workdir / "seen"
    marker_dir.mkdir()
    agent = workdir / "agent.sh"
    agent.write_text(f"""#!/bin/sh
# rate limited the first time each item runs
if [ ! -e "{marker_dir}/$1" ]; then
    touch "{marker_dir}/$1"; echo "rate limit; retry after 1" >&2; exit 1
fi
echo "ok $1"
""")
    agent.chmod(0o755)
    items = items_file(workdir / "items.txt", ["a", "b"])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "1",
            "--retries",
            "0",
            "--credentials-file",
            str(keys_file(workdir, [KEY_A])),
            "--items",
            str(items),
            "--",
            str(agent),
        ),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    assert "[agentos] the only key is busy or cooling; next free in 1.0 s" in done.stderr
    assert sorted(done.stdout.splitlines()) == ["[item-1] ok a", "[item-2] ok b"]


def test_killed_worker_mid_item(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", [str(n) for n in range(6)])
    live = Live(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--retry-backoff",
            "0.1",
            "--credentials-file",
            str(keys_file(workdir, [KEY_A, KEY_B])),
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "echo start $0; sleep 1; echo end $0",
        ),
        workdir,
    )
    live.wait_for("start", count=2)
    victim = loky_workers(live.pid)[0]
    victim.kill()
    done = live.finish(timeout=60)
    assert done.returncode == 0, done.stderr  # the killed item was retried, the rest re-run
    assert "a worker died (SIGKILL); restarting the pool (1/10)" in done.stderr
    records = journal(workdir)
    died = [r for r in records if "worker died" in r["error"]]
    assert len(died) == 1 and died[0]["signal"] == signal.SIGKILL and not died[0]["final"]
    final = {r["item"]: r["status"] for r in records if r["final"]}
    assert final == {f"item-{n}": "done" for n in range(1, 7)}
    # both keys were leased again after the death: nothing was lost with the dead worker
    kill_time = died[0]["started"] + died[0]["runtime"]
    later = {r["key_label"] for r in records if r["started"] > kill_time}
    assert later == {"key-1", "key-2"}
    assert overlaps(records) == []


LEAKY = """#!/bin/sh
echo "my key is $AGENTOS_API_KEY"
echo "stderr key $AGENTOS_API_KEY" >&2
[ "$1" = fail ] && { echo "auth failed for $AGENTOS_API_KEY" >&2; exit 3; }
exit 0
"""


@pytest.mark.parametrize("mode", [["-j", "2"], []], ids=["parallel", "sequential"])
def test_a_printed_key_appears_nowhere(workdir: Path, mode: list[str]) -> None:
    agent = workdir / "leaky.sh"
    agent.write_text(LEAKY)
    agent.chmod(0o755)
    items = items_file(workdir / "items.txt", ["ok", "fail"])
    done = run(
        agentos_argv(
            "run",
            *mode,
            "--retries",
            "0",
            "--credentials-file",
            str(keys_file(workdir, [KEY_A, KEY_B])),
            "--items",
            str(items),
            "--",
            str(agent),
        ),
        cwd=workdir,
    )
    assert done.returncode == 1
    assert "my key is [key-" in done.stdout and "auth failed for [key-" in done.stderr
    everything = done.stdout + done.stderr
    for path in only_run_dir(workdir).rglob("*"):
        if path.is_file():
            everything += path.read_text(errors="replace")
    for secret in (KEY_A, KEY_B):
        assert secret not in everything


def test_key_reaches_the_named_variable_not_the_command_line(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["x"])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "1",
            "--credential-env",
            "MY_TOKEN",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            'echo "${MY_TOKEN:+token set}"; echo "${AGENTOS_API_KEY:-no default}";'
            ' tr "\\0" " " < /proc/$$/cmdline',
        ),
        cwd=workdir,
        env=clean_env(AGENTOS_CREDENTIALS=KEY_A),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["[item-1] token set", "[item-1] no default"]
    assert KEY_A not in done.stdout and "[key-1]" not in lines[2]


def test_timeout_kills_the_whole_process_group(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["t"])
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
            str(items),
            "--",
            "sh",
            "-c",
            "echo started; sleep 100 & sleep 100",
        ),
        cwd=workdir,
    )
    assert time.monotonic() - t0 < 10
    assert done.returncode == 1
    assert "item-1 timeout: timed out after 1 s" in done.stderr
    (record,) = journal(workdir)
    assert (record["status"], record["exit_code"], record["signal"]) == ("timeout", -1, 15)
    joblog = (only_run_dir(workdir) / "joblog.tsv").read_text().splitlines()[1].split("\t")
    assert joblog[6:8] == ["-1", "15"]
    # the autouse fixture fails the test if either sleep survived


def test_timeout_in_sequential_mode_too(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["t"])
    done = run(
        agentos_argv(
            "run",
            "--timeout",
            "0.5",
            "--retries",
            "0",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "sleep 100 & sleep 100",
        ),
        cwd=workdir,
    )
    assert done.returncode == 1
    assert journal(workdir)[0]["status"] == "timeout"


def test_keys_from_the_environment_variable(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b", "c"])
    done = run(
        agentos_argv(
            "run", "-j", "3", "--items", str(items), "--", "sh", "-c", 'test -n "$AGENTOS_API_KEY"'
        ),
        cwd=workdir,
        env=clean_env(AGENTOS_CREDENTIALS=f"{KEY_A},{KEY_B}"),
    )
    assert done.returncode == 0
    assert "using 2 workers: only 2 keys are configured (asked for 3)" in done.stderr


def test_a_bad_key_file_stops_before_anything_runs(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a"])
    empty = workdir / "empty.txt"
    empty.write_text("# nothing\n")
    done = run(
        agentos_argv(
            "run", "-j", "2", "--credentials-file", str(empty), "--items", str(items), "--", "true"
        ),
        cwd=workdir,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"agentos: error: credentials file {empty} holds no keys; put one key "
        "per line ('#' starts a comment)\n"
    )
    assert not (workdir / ".agentos").exists()
    os.chmod(empty, 0o644)


def test_rate_limit_waits_are_bounded(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a"])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "1",
            "--max-rate-limit-waits",
            "2",
            "--credentials-file",
            str(keys_file(workdir, [KEY_A])),
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            'echo "429 slow down; retry after 0.1" >&2; exit 1',
        ),
        cwd=workdir,
    )
    assert done.returncode == 1
    assert "item-1 failed: rate limited 3 times (--max-rate-limit-waits 2)" in done.stderr
    assert [r["status"] for r in journal(workdir)] == ["rate_limited"] * 3


def test_simulated_429s_cool_keys_and_the_batch_still_completes(workdir: Path) -> None:
    repo = workdir / "repo"
    (repo / "ideas/active").mkdir(parents=True)
    for n in range(6):
        (repo / "ideas/active" / f"idea-{n}.md").write_text(f"# Idea {n}\n\n- It does {n}\n")
    done = run(
        agentos_argv(
            "requirements",
            "--repo",
            str(repo),
            "-j",
            "2",
            "--retries",
            "0",
            "--credentials-file",
            str(keys_file(workdir, [KEY_A, KEY_B])),
        ),
        cwd=repo,
        env=clean_env(AGENTOS_SIMULATE_429="0.3", AGENTOS_SIMULATE_429_RETRY_AFTER="0.2"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [
        json.loads(line)
        for line in next((repo / ".agentos/runs").iterdir())
        .joinpath("journal.jsonl")
        .read_text()
        .splitlines()
    ]
    assert any(r["status"] == "rate_limited" for r in records)
    assert "rate limited; cooling for 0.2 s" in done.stderr
    assert len(list((repo / "docs/lld/active").glob("*.md"))) == 6


def test_items_see_only_their_leased_key_not_every_key(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b"])
    env = clean_env(AGENTOS_CREDENTIALS="sk-env-one-0000000001,sk-env-two-0000000002")
    done = run(
        agentos_argv(
            "run",
            "-j2",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            'echo "all=[$AGENTOS_CREDENTIALS]"',
        ),
        cwd=workdir,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("all=[]") == 2
