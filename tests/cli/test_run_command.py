"""`agentos run` end to end, as real processes: output, prefixes, logs, journal, exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.processes import PYTHON, agentos_argv, clean_env, items_file, only_run_dir, run

from agentos.workflows.each_line import substitute

pytestmark = pytest.mark.timeout(120)

PRINTER = """
import sys
name, n = sys.argv[1], int(sys.argv[2])
for k in range(n):
    print(f"{name} line {k}")
    if k % 997 == 0:
        print(f"{name} err {k}", file=sys.stderr)
sys.stdout.write(f"{name} partial-end")
"""


def test_sequential_is_a_plain_tool(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b"])
    done = run(
        agentos_argv(
            "run", "--items", str(items), "--", "sh", "-c", "echo out $0; echo err $0 >&2"
        ),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "out a\nout b\n"
    assert done.stderr.startswith("err a\nerr b\n")
    assert "[item-" not in done.stdout + done.stderr
    run_dir = only_run_dir(workdir)
    # the same run directory as in parallel mode: each item's output in its log, unprefixed
    header, log = (run_dir / "logs" / "item-1.log").read_text().split("\n", 1)
    assert header.startswith("==> item-1 attempt 1, started ") and log == "out a\nerr a\n"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["mode"] == "sequential"
    assert [i["status"] for i in summary["items"]] == ["done", "done"]


def test_parallel_prefixes_lines_and_writes_plain_logs(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b", "c"])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "echo out $0; echo err $0 >&2",
        ),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [
        "[item-1] out a",
        "[item-2] out b",
        "[item-3] out c",
    ]
    for n, name in ((1, "a"), (2, "b"), (3, "c")):
        assert f"[item-{n}] err {name}\n" in done.stderr
    logs = only_run_dir(workdir) / "logs"
    header, log = (logs / "item-2.log").read_text().split("\n", 1)
    assert header.startswith("==> item-2 attempt 1") and log in ("out b\nerr b\n", "err b\nout b\n")
    assert "\x1b[" not in done.stdout  # not a TTY: no colours


def test_two_items_interleaving_ten_thousand_lines(workdir: Path) -> None:
    script = workdir / "printer.py"
    script.write_text(PRINTER)
    items = items_file(workdir / "items.txt", ["x", "y"])
    done = run(
        agentos_argv(
            "run", "-j", "2", "--items", str(items), "--", PYTHON, str(script), "{}", "10000"
        ),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    per_item: dict[str, list[str]] = {"item-1": [], "item-2": []}
    for line in done.stdout.splitlines():
        match = re.fullmatch(r"\[(item-[12])\] (.*)", line)
        assert match, f"mixed or unprefixed line: {line!r}"
        per_item[match.group(1)].append(match.group(2))
    for item_id, name in (("item-1", "x"), ("item-2", "y")):
        expected = [f"{name} line {k}" for k in range(10000)] + [f"{name} partial-end"]
        assert per_item[item_id] == expected  # nothing lost, nothing mixed, order kept
        log = (only_run_dir(workdir) / "logs" / f"{item_id}.log").read_text().splitlines()
        assert [line for line in log if " line " in line or "partial" in line] == expected
        assert sum(1 for line in log if " err " in line) == 11
    assert done.stdout.endswith("partial-end\n")


def test_grandchild_output_is_captured_and_prefixed(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["deep"])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "sh -c 'echo grandchild $0; echo grandchild-err $0 >&2' $0",
        ),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[item-1] grandchild deep\n"
    assert "[item-1] grandchild-err deep\n" in done.stderr


def test_a_failing_item_does_not_affect_the_others(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["0", "3", "0", "0"])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--retries",
            "0",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "echo ran $0; exit $0",
        ),
        cwd=workdir,
    )
    assert done.returncode == 1
    assert sorted(done.stdout.splitlines()) == [
        f"[item-{n}] ran {v}" for n, v in ((1, 0), (2, 3), (3, 0), (4, 0))
    ]
    assert "item-2 failed: sh: exit 3" in done.stderr
    run_dir = only_run_dir(workdir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {i["id"]: i["status"] for i in summary["items"]} == {
        "item-1": "done",
        "item-2": "failed",
        "item-3": "done",
        "item-4": "done",
    }
    assert summary["exit_code"] == 1
    rows = [r.split("\t") for r in (run_dir / "joblog.tsv").read_text().splitlines()]
    assert rows[0] == [
        "Seq",
        "Host",
        "Starttime",
        "JobRuntime",
        "Send",
        "Receive",
        "Exitval",
        "Signal",
        "Command",
    ]
    by_seq = {r[0]: r for r in rows[1:]}
    assert by_seq["2"][6] == "3" and by_seq["1"][6] == "0"
    assert by_seq["2"][8] == "sh -c 'echo ran $0; exit $0' 3"
    assert re.fullmatch(r"\d+\.\d{3}", by_seq["1"][2]) and re.fullmatch(
        r"\d+\.\d{3}", by_seq["1"][3]
    )


def test_failed_item_is_retried_and_journaled(workdir: Path) -> None:
    marker = workdir / "marker"
    items = items_file(workdir / "items.txt", [str(marker)])
    # fails the first time (creates the marker), succeeds the second
    done = run(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--retry-backoff",
            "0.1",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            'test -e "$0" && exit 0; touch "$0"; exit 1',
        ),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    assert "item-1 failed: sh: exit 1; retry 1 of 1 in 0.1 s" in done.stderr
    records = [
        json.loads(line)
        for line in (only_run_dir(workdir) / "journal.jsonl").read_text().splitlines()
    ]
    assert [(r["attempt"], r["status"], r["final"]) for r in records] == [
        (1, "failed", False),
        (2, "done", True),
    ]


def test_one_item_with_four_workers(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["solo"])
    done = run(
        agentos_argv("run", "--parallel", "4", "--items", str(items), "--", "echo"), cwd=workdir
    )
    assert done.returncode == 0
    assert done.stdout == "[item-1] solo\n"
    assert json.loads((only_run_dir(workdir) / "summary.json").read_text())["workers"] == 1


def test_items_get_dev_null_on_stdin(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a"])
    for mode in ([], ["-j", "2"]):
        done = run(
            agentos_argv(
                "run",
                *mode,
                "--timeout",
                "20",
                "--items",
                str(items),
                "--",
                "sh",
                "-c",
                "cat; echo stdin-closed",
            ),
            cwd=workdir,
        )
        assert done.returncode == 0
        assert done.stdout.endswith("stdin-closed\n")


def test_command_that_cannot_execute_fails_clearly(workdir: Path) -> None:
    script = workdir / "noexec.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    items = items_file(workdir / "items.txt", [str(script)])
    done = run(
        agentos_argv("run", "-j", "1", "--retries", "0", "--items", str(items), "--", "{}"),
        cwd=workdir,
    )
    assert done.returncode == 1
    assert f"item-1 failed: cannot run {script}: permission denied" in done.stderr
    assert "Traceback" not in done.stderr
    refused = run(agentos_argv("run", "--items", str(items), "--", str(script)), cwd=workdir)
    assert refused.returncode == 2
    assert refused.stderr == f"agentos: error: {script} is not executable; run: chmod +x {script}\n"


def test_status_line_off_a_tty_and_verbose_messages(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["a", "b", "c"])
    done = run(
        agentos_argv(
            "run", "-j", "2", "-v", "--items", str(items), "--", "sh", "-c", "sleep 0.4", "{}"
        ),
        cwd=workdir,
        env=clean_env(AGENTOS_STATUS_INTERVAL="0.1"),
    )
    assert done.returncode == 0
    status = [
        line
        for line in done.stderr.splitlines()
        if re.fullmatch(r"\[agentos\] \d/3 done, 0 failed, \d running", line)
    ]
    assert status, done.stderr
    assert "[agentos] item-1 started (attempt 1, worker " in done.stderr
    assert re.search(r"\[agentos\] item-3 done in 0\.\d s", done.stderr)
    assert "\x1b[" not in done.stderr


@pytest.mark.parametrize("mode", [["-j", "2"], []], ids=["parallel", "sequential"])
def test_rate_limited_without_keys_waits_the_retry_after(workdir: Path, mode: list[str]) -> None:
    marker = workdir / "limited-once"
    items = items_file(workdir / "items.txt", [str(marker)])
    done = run(
        agentos_argv(
            "run",
            *mode,
            "--retries",
            "0",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            'test -e "$0" && exit 0; touch "$0"; echo "Retry-After: 0.3" >&2; exit 75',
        ),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    assert "item-1 rate limited; trying again in 0.3 s" in done.stderr
    records = [
        json.loads(line)
        for line in (only_run_dir(workdir) / "journal.jsonl").read_text().splitlines()
    ]
    assert [r["status"] for r in records] == ["rate_limited", "done"]
    assert records[1]["started"] - (records[0]["started"] + records[0]["runtime"]) >= 0.25


def test_embedded_placeholder_is_shell_quoted(workdir: Path) -> None:
    hostile = ["hello $(touch pwned)", "it's `touch pwned2`; touch pwned3", "tab\there"]
    items = items_file(workdir / "items.txt", hostile)
    done = run(
        agentos_argv("run", "--items", str(items), "--", "sh", "-c", "printf '%s|' {}; echo"),
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{line}|" for line in hostile]  # data, never code
    assert not list(workdir.glob("pwned*"))
    # a whole-argument {} is the item itself, one argument, nothing quoted
    whole = run(
        agentos_argv("run", "--items", str(items), "--", "printf", "<%s>\\n", "{}"), cwd=workdir
    )
    assert whole.stdout.splitlines() == [f"<{line}>" for line in hostile]


def joblog_rows(run_dir: Path) -> dict[str, list[str]]:
    rows = [r.split("\t", 8) for r in (run_dir / "joblog.tsv").read_text().splitlines()[1:]]
    return {r[0]: r for r in rows}


def test_joblog_as_gnu_parallel_writes_it(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["sleep 30", "kill -9 $$", "printf 'a\\tb'"])
    done = run(
        agentos_argv(
            "run",
            "-j3",
            "--timeout",
            "1",
            "--retries",
            "0",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            "{}",
        ),
        cwd=workdir,
    )
    assert done.returncode == 1
    rows = joblog_rows(only_run_dir(workdir))
    # a timed-out attempt: the real command (so --retry-failed can rerun it), Exitval -1
    assert rows["1"][6:] == ["-1", "15", "sh -c 'sleep 30'"]
    # killed by a signal: Exitval 0 with the Signal, as GNU parallel writes it
    assert rows["2"][6:] == ["0", "9", "sh -c 'kill -9 $$'"]
    assert rows["3"][6:] == ["0", "0", "sh -c 'printf '\"'\"'a\\tb'\"'\"''"]  # the tab kept


@pytest.mark.skipif(shutil.which("parallel") is None, reason="GNU parallel is not installed")
def test_gnu_parallel_retries_the_failed_jobs_of_our_joblog(workdir: Path) -> None:
    items = items_file(workdir / "items.txt", ["ok1", "bad", "ok2"])
    script = f'echo "$0" >> {workdir}/ran; [ "$0" != bad ] || [ -e {workdir}/fixed ]'
    done = run(
        agentos_argv("run", "--retries", "0", "--items", str(items), "--", "sh", "-c", script),
        cwd=workdir,
    )
    assert done.returncode == 1
    (workdir / "ran").unlink()
    (workdir / "fixed").touch()
    joblog = only_run_dir(workdir) / "joblog.tsv"
    again = subprocess.run(
        ["parallel", "--will-cite", "--retry-failed", "--joblog", str(joblog)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert again.returncode == 0, again.stderr
    assert (workdir / "ran").read_text() == "bad\n"  # only the failed job, with its own command


def test_a_placeholder_inside_the_scripts_own_quotes_stays_data(workdir: Path) -> None:
    """`sh -c "echo '{}'"` and `sh -c 'echo "{}"'` with the item `$(touch pwned)` ran it: the
    item was shell-quoted as if bare, which the script's own quotes undid."""
    hostile = ["$(touch pwned)", "it's `touch pwned2`; touch pwned3", 'say "$(touch pwned4)"']
    items = items_file(workdir / "items.txt", hostile)
    for script in ("echo '{}'", 'echo "{}"', "echo \"a'{}'b\"", "echo x'{}'y {}"):
        done = run(
            agentos_argv("run", "-q", "--items", str(items), "--", "sh", "-c", script),
            cwd=workdir,
        )
        assert done.returncode == 0, (script, done.stderr)
        expected = {
            "echo '{}'": hostile,
            'echo "{}"': hostile,
            "echo \"a'{}'b\"": [f"a'{line}'b" for line in hostile],
            "echo x'{}'y {}": [f"x{line}y {line}" for line in hostile],
        }[script]
        assert done.stdout.splitlines() == expected, script
    assert not list(workdir.glob("pwned*"))


@pytest.mark.parametrize(
    ("script", "where"),
    [
        ("echo `echo {}`", "inside backquotes"),
        ("echo ${x:-{}}", "inside ${...}"),
        ("echo $'{}'", "inside $'...'"),
        ("echo $(( {} ))", "inside $((...))"),
        ("echo \\{}", "after a backslash"),
        ("cat <<EOF\n'{}'\nEOF", "after a here-document (<<)"),
    ],
)
def test_a_placeholder_no_quoting_can_keep_data_is_refused_before_anything(
    workdir: Path, script: str, where: str
) -> None:
    items = items_file(workdir / "items.txt", ["$(touch pwned)"])
    done = run(agentos_argv("run", "--items", str(items), "--", "sh", "-c", script), cwd=workdir)
    assert done.returncode == 2
    assert done.stderr.startswith(f"agentos: error: {{}} {where} in ")
    assert "sh -c 'echo \"$1\"' sh {}" in done.stderr  # the safe form
    assert done.stderr.count("\n") == 1
    assert not (workdir / ".agentos").exists()
    assert not list(workdir.glob("pwned*"))


#: template -> what it prints for the item X
TEMPLATES = {
    "printf '%s\\n' {}": "X\n",
    "printf '%s\\n' '{}'": "X\n",
    'printf "%s\\n" "{}"': "X\n",
    "printf '%s\\n' \"$(printf '%s' \"{}\")\"": "X\n",
    "printf '%s\\n' x'{}'y\"{}\"z{}": "xXyXzX\n",
    "case {} in *) printf '%s\\n' \"{}\";; esac # it's a comment": "X\n",
}


@settings(max_examples=40, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\n"),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from(sorted(TEMPLATES)),
    st.sampled_from(("sh", "bash")),
)
def test_any_item_in_any_quoting_comes_out_as_itself(item: str, template: str, shell: str) -> None:
    """Every quoting the lexer chooses, run by real shells: the item comes out as itself."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    _, script = substitute(("-c", template), item)
    out = subprocess.run([shell, "-c", script], capture_output=True, timeout=10, cwd="/").stdout
    assert out.decode("utf-8", errors="surrogateescape") == TEMPLATES[template].replace("X", item)
