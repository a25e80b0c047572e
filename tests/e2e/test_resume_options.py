"""`--resume RUN_DIR` is enough: the command, the items, the repository, the agents and every
option come from the run's run.json; an option given again may change only what is safe to
change; the exact command that resumes is printed, and following it works, from anywhere."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import click
import pytest
from support.processes import (
    PYTHON,
    REPO,
    Finished,
    Live,
    agentos_argv,
    clean_env,
    items_file,
    only_run_dir,
    run,
)
from support.rundir import summary
from support.sim import repo_with_briefs

from agentos.commands.cli import cli

pytestmark = pytest.mark.timeout(180)

SLOW_ITEM = ["sh", "-c", "echo start $0; sleep 1; echo end $0"]


def manifest(run_dir: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((run_dir / "run.json").read_text())  # type: ignore[no-any-return]


def printed_resume_command(stderr: str) -> list[str]:
    """The command the summary says resumes the run, as argv for this interpreter."""
    line = next(line for line in stderr.splitlines() if "; to resume: " in line)
    words = shlex.split(line.split("; to resume: ", 1)[1])
    assert words[0] == "agentos", line
    return agentos_argv(*words[1:])


def llds(repo: Path, pattern: str) -> list[Path]:
    """The LLDs in the repository matching `pattern`: approved ones and Drafts."""
    return sorted((repo / "docs" / "lld").glob(f"*/{pattern}"))


def run_from(argv: list[str], cwd: Path, **env: str) -> Finished:
    return run(argv, cwd=cwd, env=clean_env(**env), timeout=120)


def test_the_printed_command_resumes_a_stopped_run(workdir: Path) -> None:
    """`agentos run -j4 --resume DIR`: no command, no items given; from another directory."""
    items_file(workdir / "items.txt", [str(n) for n in range(8)])
    live = Live(
        agentos_argv("run", "-j", "2", "--retries", "3", "--items", "items.txt", "--", *SLOW_ITEM),
        workdir,
    )
    live.wait_for("start", count=2)
    live.interrupt(signal.SIGINT)
    first = live.finish(timeout=60)
    assert first.returncode == 130, first.stderr
    run_dir = only_run_dir(workdir)
    assert summary(run_dir)["totals"] == {"done": 2, "not run": 6}
    resume = printed_resume_command(first.stderr)
    assert resume == agentos_argv("run", "--resume", str(run_dir.resolve()))

    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    again = run_from([*resume, "-j", "4"], elsewhere)
    assert again.returncode == 0, again.stderr
    assert f"resuming in {workdir.resolve()}, where the run started" in again.stderr
    data = summary(run_dir)
    assert data["totals"] == {"done": 8} and data["workers"] == 4
    assert sorted(line.split()[-1] for line in again.stdout.splitlines() if " end " in line) == [
        str(n) for n in range(2, 8)
    ]  # the rest, exactly: the command and items came from run.json
    params = manifest(run_dir)["params"]
    assert params["parallel"] == 4  # what this pass changed is what a next resume uses
    assert params["retries"] == 3  # and what it did not give is kept
    assert params["command"] == SLOW_ITEM
    assert params["items"] == str(workdir.resolve() / "items.txt")
    assert not list(elsewhere.iterdir())  # nothing made where the resume was typed


def test_a_resume_keeps_what_the_run_is(workdir: Path) -> None:
    items_file(workdir / "items.txt", ["a", "b"])
    first = run(
        agentos_argv("run", "--items", "items.txt", "--id-from-item", "--", "echo", "{}"),
        cwd=workdir,
    )
    assert first.returncode == 0, first.stderr
    run_dir = only_run_dir(workdir)
    before = (run_dir / "journal.jsonl").read_bytes()
    refused = run(
        agentos_argv("run", "--resume", str(run_dir), "--credential-env", "OTHER_KEY"),
        cwd=workdir,
    )
    assert refused.returncode == 2
    assert refused.stderr == (
        f"agentos: error: cannot resume {run_dir.resolve()}: it was started with other values "
        "(--credential-env 'AGENTOS_API_KEY' there, 'OTHER_KEY' now); drop --credential-env to "
        "resume it as it was started, or start a new run without --resume\n"
    )
    # the same values given again are no difference; safe ones may change
    same = run(
        agentos_argv(
            "run", "--resume", str(run_dir), "--id-from-item", "--timeout", "5", "--", "echo", "{}"
        ),
        cwd=workdir,
    )
    assert same.returncode == 0, same.stderr
    assert same.stdout.startswith("Nothing to process (2 already done)")
    assert (run_dir / "journal.jsonl").read_bytes() == before


def test_items_read_from_stdin_are_kept_for_the_resume(workdir: Path) -> None:
    flaky = ["sh", "-c", 'if [ -e "fail-$0" ]; then exit 3; fi; echo ran $0']
    (workdir / "fail-b").touch()
    first = run(agentos_argv("run", "--retries", "0", "--", *flaky), cwd=workdir, input="a\nb\nc\n")
    assert first.returncode == 1, first.stderr
    run_dir = only_run_dir(workdir)
    (workdir / "fail-b").unlink()
    again = run(agentos_argv("run", "--resume", str(run_dir)), cwd=workdir)  # stdin: /dev/null
    assert again.returncode == 0, again.stderr
    assert again.stdout == "ran b\n"
    assert (run_dir / "items-from-stdin.txt").read_text() == "a\nb\nc\n"


def agent_script(folder: Path) -> Path:
    """A drafter and reviewer: fails on the brief `Idea 1` while `stop` exists beside it."""
    script = folder / "myagent.sh"
    script.write_text(
        "#!/bin/sh\n"
        'here=$(dirname "$0")\n'
        "prompt=$(cat)\n"
        'case "$prompt" in\n'
        '  *"Answer APPROVED or REVISE"*) printf "APPROVED\\nfine\\n"; exit 0;;\n'
        "esac\n"
        'case "$prompt" in\n'
        '  *"Brief: Idea 1"*) if [ -e "$here/stop" ]; then echo stopped >&2; exit 3; fi;;\n'
        "esac\n"
        "printf '# LLD: x\\n\\n## 1. Context & goal\\nx\\n## 2. Proposed changes\\nx\\n"
        "## 3. Requirements\\n- R1: x\\n## 4. Test scenarios\\n| ID | Requirement | Scenario |"
        " Expected |\\n|---|---|---|---|\\n| T1 | R1 | a | b |\\n## 5. Security & safety\\nx\\n"
        "## 6. Definition of done\\n- [ ] x\\n'\n"
    )
    script.chmod(0o755)
    return script


def test_requirements_resumes_from_another_directory_with_its_agent(tmp_path: Path) -> None:
    """A relative `cmd:` agent typed in w/ runs in the repository (found where it was typed);
    `agentos requirements --resume DIR --budget 1` from elsewhere uses that agent and that
    repository; a resume that names another drafter is refused, naming it."""
    repo = repo_with_briefs(tmp_path, 3)
    w = tmp_path / "w"
    w.mkdir()
    agent_script(w)
    (w / "stop").touch()
    first = run(
        agentos_argv(
            "requirements", "--drafter", "cmd:./myagent.sh", "--repo", "../repo", "--retries", "0"
        ),
        cwd=w,
    )
    assert first.returncode == 1, first.stderr
    run_dir = only_run_dir(w)
    rows = {row["id"]: row for row in summary(run_dir)["items"]}
    assert rows["brief-idea-00"]["status"] == "done", rows  # the agent was found in ../repo
    assert rows["brief-idea-01"]["status"] == "failed"
    assert "stopped" in rows["brief-idea-01"]["error"]
    assert manifest(run_dir)["params"]["drafter"] == f"cmd:{w.resolve() / 'myagent.sh'}"

    (w / "stop").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = run(
        agentos_argv("requirements", "--resume", str(run_dir), "--drafter", "mock"),
        cwd=elsewhere,
    )
    assert other.returncode == 2
    assert other.stderr.count("\n") == 1
    assert "(--drafter 'cmd:" in other.stderr and "'mock' now); drop --drafter to" in other.stderr
    assert llds(repo, "idea-01.md") == []  # nothing ran

    env = clean_env()
    env.pop("AGENTOS_DRAFTER")  # nothing names a drafter now: the recorded one is used
    again = run(
        agentos_argv("requirements", "--resume", str(run_dir.relative_to(tmp_path.parent)),
                     "--budget", "1"),
        cwd=tmp_path.parent,
        env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert len(llds(repo, "idea-01.md")) == 1
    assert summary(run_dir)["totals"] == {"done": 3}
    assert manifest(run_dir)["params"]["budget"] == 1.0
    assert manifest(run_dir)["params"]["drafter"] == f"cmd:{w.resolve() / 'myagent.sh'}"


def test_a_relative_agent_is_found_where_it_was_typed(tmp_path: Path) -> None:
    repo = repo_with_briefs(tmp_path, 2)
    w = tmp_path / "w"
    w.mkdir()
    agent_script(w)
    done = run(
        agentos_argv("requirements", "--drafter", "cmd:./myagent.sh", "--repo", "../repo", "-j2"),
        cwd=w,
    )
    assert done.returncode == 0, done.stderr
    assert "not found" not in done.stderr
    assert len(llds(repo, "idea-*.md")) == 2


def test_a_run_stopped_before_its_journal_resumes(workdir: Path) -> None:
    """What a Ctrl+C a moment after the run directory was made leaves: run.json, no journal."""
    items_file(workdir / "items.txt", ["a", "b"])
    argv = agentos_argv("run", "--items", "items.txt", "--", "echo")
    assert run(argv, cwd=workdir).returncode == 0
    run_dir = only_run_dir(workdir)
    for name in os.listdir(run_dir):
        if name not in ("run.json", ".lock"):
            path = run_dir / name
            subprocess.run(["rm", "-rf", str(path)], check=True)
    again = run(agentos_argv("run", "--resume", str(run_dir)), cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "a\nb\n"

    bare = workdir / "bare"
    bare.mkdir()
    (bare / ".lock").touch()  # made, then killed before it wrote anything
    refused = run(agentos_argv("run", "--resume", str(bare)), cwd=workdir)
    assert refused.returncode == 2
    assert "nothing to resume; run the command again without --resume" in refused.stderr


def test_a_ctrl_c_at_start_leaves_nothing_or_a_run_that_resumes(workdir: Path) -> None:
    items_file(workdir / "items.txt", ["a", "b"])
    argv = agentos_argv("run", "-j", "2", "--items", "items.txt", "--", "echo")
    ours = 0
    for n, delay in enumerate((0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8)):
        run_dir = workdir / f"run-{n}"
        proc = subprocess.Popen(
            [*argv[:4], "--run-dir", str(run_dir), *argv[4:]],
            cwd=workdir,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        said = err.decode(errors="replace")
        if proc.returncode == 0:  # done before the signal came
            assert summary(run_dir)["totals"] == {"done": 2}
            ours += 1
            continue
        if proc.returncode != 130:  # the interpreter's own start-up, before any agentos code
            assert proc.returncode in (-signal.SIGINT, 1), (proc.returncode, said)
            assert "agentos: " not in said, said
            continue
        ours += 1
        if not run_dir.exists():
            assert said.endswith(
                "agentos: interrupted before the run started: nothing was done; "
                "run the command again\n"
            ), said
            continue
        again = run(agentos_argv("run", "--resume", str(run_dir)), cwd=workdir)
        assert again.returncode == 0, (said, again.stderr)
        assert summary(run_dir)["totals"] == {"done": 2}
    assert ours >= 3


def test_run_json_records_every_option(workdir: Path) -> None:
    pytest.importorskip("apprise")
    items_file(workdir / "items.txt", ["a"])
    done = run(
        agentos_argv(
            "run", "--items", "items.txt", "--notify", "json://localhost:9/x", "-q", "--", "true"
        ),
        cwd=workdir,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    params = manifest(only_run_dir(workdir))["params"]
    ctx = click.Context(cli)
    command = cli.get_command(ctx, "run")
    assert command is not None
    names = {p.name for p in command.params}
    fresh = {"dry_run", "run_dir", "resume", "no_color", "quiet", "verbose", "notify"}
    assert set(params) == names - fresh  # the URL (a token) is never written down
    assert "localhost:9" not in (only_run_dir(workdir) / "run.json").read_text()


def test_scripts_print_a_resume_command_that_runs_them(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "demo-repo", repo)
    script = REPO / "scripts" / "run_requirements_workflow.py"
    live = Live(
        [PYTHON, str(script), "--repo", str(repo), "-j", "2", "--grace", "0"],
        repo,
        env=clean_env(AGENTOS_MOCK_LATENCY="0.5"),
    )
    live.wait_for("] wrote docs/lld/", stream="err")
    live.interrupt(signal.SIGINT)
    first = live.finish(timeout=60)
    assert first.returncode == 130, first.stderr
    line = next(line for line in first.stderr.splitlines() if "; to resume: " in line)
    words = shlex.split(line.split("; to resume: ", 1)[1])
    assert words[:2] == [PYTHON, str(script)], words
    again = run(words, cwd=tmp_path, env=clean_env())
    assert again.returncode == 0, again.stderr
    assert "not run" not in summary(only_run_dir(repo))["totals"]
    shipped = {p.name for p in (REPO / "examples/demo-repo/docs/lld/active").iterdir()}
    assert len([p for p in llds(repo, "*.md") if p.name not in shipped]) == 12
