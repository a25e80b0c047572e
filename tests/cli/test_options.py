"""The shared options, through click's CliRunner: exit code, stdout and stderr checked apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.processes import agentos_argv, run, script_argv

from agentos.commands.cli import cli
from agentos.run.runner import configure_logging


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTOS_CREDENTIALS", raising=False)
    configure_logging()
    return CliRunner()


@pytest.fixture
def items(tmp_path: Path) -> Path:
    path = tmp_path / "items.txt"
    path.write_text("alpha\nbeta\n\ngamma\n")
    return path


def invoke(runner: CliRunner, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(cli, list(args), input=input, catch_exceptions=False)


def created_anything(root: Path, items: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p != items]


def test_parallel_dry_run_lists_pending_items(
    runner: CliRunner, items: Path, tmp_path: Path
) -> None:
    result = invoke(
        runner, "run", "--parallel", "4", "--dry-run", "--items", str(items), "--", "echo"
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "title", "source"]
    assert [line.split()[0] for line in lines[1:4]] == ["item-1", "item-2", "item-4"]
    assert lines[-1] == "3 pending items"
    assert result.stderr == ""
    assert created_anything(tmp_path, items) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--parallel"], "requires an argument"),
        (["--parallel", "abc"], "expected a whole number (at least 1), got 'abc'"),
        (["--parallel", "0"], "expected a whole number (at least 1), got 0"),
        (["--parallel", "-1"], "expected a whole number (at least 1), got -1"),
        (["-j", "1.5"], "expected a whole number (at least 1), got 1.5"),
        (["--timeout", "soon"], "expected a number (at least 0), got 'soon'"),
        (["--timeout", "nan"], "expected a number (at least 0), got nan"),
        (["--budget", "0"], "expected a number (more than 0), got 0"),
        (["--grace", "-1"], "--grace"),
        (["--credential-env", "1BAD"], "not a valid environment variable name"),
        (["--rate-limit-pattern", "(unclosed"], "not a valid regular expression"),
    ],
)
def test_bad_options_are_usage_errors(
    runner: CliRunner, items: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = (
        ["run", "--items", str(items), *args]
        if args != ["--parallel"]
        else ["run", "--items", str(items), "--parallel"]
    )
    if args != ["--parallel"]:
        argv += ["--", "echo"]
    result = invoke(runner, *argv)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert created_anything(tmp_path, items) == []
    # one line, as the README promises: no usage block, no "Try --help" line
    assert re.fullmatch(r"agentos: error: [^\n]+\n", result.stderr), result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("requirements", "--max-iterations", "three"), "expected a whole number, got 'three'"),
        (("status", "--watch", "0.1"), "expected a number (at least 0.2), got 0.1"),
    ],
)
def test_every_number_option_says_what_it_expects(
    runner: CliRunner, args: tuple[str, ...], message: str
) -> None:
    result = invoke(runner, *args)
    assert result.exit_code == 2
    assert message in result.stderr and "valid integer" not in result.stderr


def test_help_states_the_range_in_words(runner: CliRunner) -> None:
    shown = " ".join(invoke(runner, "run", "--help").stdout.split())
    assert "[at least 1]" in shown and "x>=" not in shown


@pytest.mark.parametrize(
    ("argv", "stderr"),
    [
        (
            agentos_argv("run", "--parallel", "0", "--", "echo"),
            "agentos: error: Invalid value for '--parallel' / '-j': expected a whole number "
            "(at least 1), got 0; see 'agentos run --help'\n",
        ),
        (
            agentos_argv("run", "-j", "abc", "--", "echo"),
            "agentos: error: Invalid value for '--parallel' / '-j': expected a whole number "
            "(at least 1), got 'abc'; see 'agentos run --help'\n",
        ),
        (
            agentos_argv("run", "--parallell", "2", "--", "echo"),
            "agentos: error: No such option '--parallell' (did you mean '--parallel'?); "
            "see 'agentos run --help'\n",
        ),
        (
            agentos_argv("run", "-j"),
            "agentos: error: Option '-j' requires an argument; see 'agentos run --help'\n",
        ),
        (
            agentos_argv("implement", "--implementer"),
            "agentos: error: Option '--implementer' requires an argument; "
            "see 'agentos implement --help'\n",
        ),
        (
            agentos_argv("nonsense"),
            "agentos: error: No such command 'nonsense'; see 'agentos --help'\n",
        ),
        (
            script_argv("run_requirements_workflow.py", "--parallel", "0"),
            "agentos: error: Invalid value for '--parallel' / '-j': expected a whole number "
            "(at least 1), got 0; see 'run_requirements_workflow.py --help'\n",
        ),
        (
            script_argv("run_implement_from_lld.py", "-j", "abc"),
            "agentos: error: Invalid value for '--parallel' / '-j': expected a whole number "
            "(at least 1), got 'abc'; see 'run_implement_from_lld.py --help'\n",
        ),
    ],
    ids=["zero", "abc", "typo", "missing-value", "implement", "command", "script", "script-abc"],
)
def test_usage_errors_are_one_line_from_every_entry_point(
    tmp_path: Path, argv: list[str], stderr: str
) -> None:
    done = run(argv, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", stderr)
    assert list(tmp_path.iterdir()) == []


def test_click_usage_errors_in_process_are_the_same_line(runner: CliRunner) -> None:
    result = invoke(runner, "run", "-j", "0", "--", "echo")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "agentos: error: Invalid value for '--parallel' / '-j': expected a whole number "
        "(at least 1), got 0; see 'agentos run --help'\n"
    )


def test_an_error_of_any_command_is_one_escaped_line(runner: CliRunner, tmp_path: Path) -> None:
    """Every agentos error reaches the shell the same way, whichever command raised it: one
    line, its exit code, and what it quotes escaped (a path or an item may hold a terminal
    control sequence)."""
    result = invoke(runner, "status", str(tmp_path / "no\x1b[31mdir"))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"agentos: error: {tmp_path}/no\\x1b[31mdir is not an agentos run directory\n"
    )


def test_bare_agentos_still_shows_the_commands(runner: CliRunner) -> None:
    result = invoke(runner)
    assert result.exit_code == 2
    assert "Commands:" in result.output and "requirements" in result.output


def test_parallel_above_ten_is_capped_with_one_warning(runner: CliRunner, items: Path) -> None:
    result = invoke(runner, "run", "-j", "20", "--dry-run", "--items", str(items), "--", "echo")
    assert result.exit_code == 0
    assert result.stderr.count("requested 20 workers, capping to 10") == 1
    assert "3 pending items" in result.stdout


def test_zero_items_is_nothing_to_process(runner: CliRunner, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = invoke(runner, "run", "-j", "4", "--items", str(empty), "--", "echo")
    assert result.exit_code == 0
    assert result.stdout.strip() == "Nothing to process"
    assert not (tmp_path / ".agentos").exists()


def test_missing_command_is_a_usage_error(runner: CliRunner, items: Path) -> None:
    result = invoke(runner, "run", "--items", str(items))
    assert result.exit_code == 2
    assert result.stderr.startswith("agentos: error: no command given")


def test_unknown_program_is_a_config_error(runner: CliRunner, items: Path) -> None:
    result = invoke(runner, "run", "--items", str(items), "--", "no-such-program-xyz")
    assert result.exit_code == 2
    assert result.stderr == (
        "agentos: error: command not found: no-such-program-xyz; "
        "check the name or give a path to it\n"
    )


def test_missing_items_file(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "run", "--items", str(tmp_path / "nope.txt"), "--", "echo")
    assert result.exit_code == 2
    assert "items file" in result.stderr and "does not exist" in result.stderr


def test_items_from_stdin_with_ids_from_lines(runner: CliRunner) -> None:
    result = invoke(runner, "run", "--dry-run", "--id-from-item", "--", "echo", input="a b\n../x\n")
    assert result.exit_code == 0
    ids = [line.split()[0] for line in result.stdout.splitlines()[1:3]]
    assert ids == ["a_b", "x"]


def test_lines_that_make_one_id_get_two(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "dupes.txt"
    path.write_text("same\nsame\n")
    result = invoke(
        runner, "run", "--dry-run", "--id-from-item", "--items", str(path), "--", "echo"
    )
    assert result.exit_code == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[1:3]] == ["same", "same.2"]


def test_resume_needs_a_run_directory(runner: CliRunner, items: Path, tmp_path: Path) -> None:
    (tmp_path / "notarun").mkdir()
    result = invoke(
        runner, "run", "--resume", str(tmp_path / "notarun"), "--items", str(items), "--", "echo"
    )
    assert result.exit_code == 2
    assert "is not an agentos run directory" in result.stderr


def test_help_lists_shared_options(runner: CliRunner) -> None:
    result = invoke(runner, "run", "--help")
    assert result.exit_code == 0
    for option in (
        "--parallel",
        "--dry-run",
        "--run-dir",
        "--grace",
        "--no-color",
        "--timeout",
        "--retries",
        "--credentials-file",
        "--resume",
        "--items",
        "--id-from-item",
    ):
        assert option in result.stdout
