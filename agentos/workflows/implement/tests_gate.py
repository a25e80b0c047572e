"""The repository's own tests as the gate an implementation must pass.

Which command: `--test-cmd` when given; otherwise found in the base commit, in this order:

    pytest      a pytest configuration (pytest.ini, [tool.pytest.ini_options] in pyproject.toml,
                [tool:pytest] in setup.cfg, [pytest] in tox.ini), a conftest.py, or a tests/ or
                test/ folder                                          → python -m pytest -q
    npm         package.json with a "test" script other than npm init's placeholder → npm test
    make        a Makefile with a `test:` target                       → make test

None found: the items end "done (unverified)" and the summary says so.

The command runs in the item's worktree with a time limit, without any key in its environment
(it runs code an agent wrote), with the worktree's `src/` and top on PYTHONPATH: an editable
install of the repository in the user's virtualenv would otherwise make the tests import the
user's checkout instead of the branch. Its whole output goes to the item's audit trail; the
agent gets the tail.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentos.item.context import ItemContext
    from agentos.workflows.implement.git import Repository

#: how much of a failing run's output the agent is shown
TAIL_LINES = 80
TAIL_CHARS = 6000
_NPM_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'
_MAKE_TEST = re.compile(rb"^test\s*:(?!=)", re.MULTILINE)
#: file names test runners collect: a file the agent added that matches is a new test
_TEST_FILE = re.compile(
    r"(^|/)(test_[^/]*\.py|[^/]*_test\.py|[^/]*\.(test|spec)\.[cm]?[jt]sx?|[^/]*_test\.go)$"
)


@dataclass(frozen=True)
class TestCommand:
    """A shell command line and why it was chosen."""

    __test__ = False  # not a pytest class, whatever its name

    line: str
    source: str  # "--test-cmd" or what it was detected from

    def argv(self) -> list[str]:
        return ["/bin/sh", "-c", self.line]


def detect(repo: Repository) -> TestCommand | None:
    """The repository's test command at its base commit, or None."""
    names = repo.top_level_names()
    pytest_from = _pytest_config(repo, names)
    if pytest_from is not None:
        python = "python" if shutil.which("python") else "python3"
        return TestCommand(f"{python} -m pytest -q", pytest_from)
    if "package.json" in names:
        try:
            scripts = json.loads(repo.show("package.json") or b"{}").get("scripts") or {}
        except (ValueError, AttributeError):
            scripts = {}
        test = scripts.get("test") if isinstance(scripts, dict) else None
        if isinstance(test, str) and test.strip() and test.strip() != _NPM_PLACEHOLDER:
            return TestCommand("npm test", "package.json's test script")
    for name in ("GNUmakefile", "makefile", "Makefile"):
        if name in names and _MAKE_TEST.search(repo.show(name) or b""):
            return TestCommand("make test", f"{name}'s test target")
    return None


def _pytest_config(repo: Repository, names: set[str]) -> str | None:
    if "pytest.ini" in names:
        return "pytest.ini"
    for name, section in (
        ("pyproject.toml", "tool.pytest.ini_options"),
        ("setup.cfg", "tool:pytest"),
        ("tox.ini", "pytest"),
    ):
        if name in names and _has_section(repo.show(name) or b"", section, toml=name.endswith("l")):
            return f"{name} [{section}]"
    if "conftest.py" in names:
        return "conftest.py"
    for folder in ("tests", "test"):
        if folder in names:
            return f"the {folder}/ folder"
    return None


def _has_section(data: bytes, section: str, *, toml: bool) -> bool:
    text = data.decode("utf-8", errors="replace")
    if toml:
        return re.search(rf"^\s*\[{re.escape(section)}\]", text, re.MULTILINE) is not None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return False
    return parser.has_section(section)


def is_test_file(path: str) -> bool:
    return _TEST_FILE.search(PurePosixPath(path).as_posix()) is not None


@dataclass(frozen=True)
class TestRun:
    """How one run of the repository's tests ended."""

    __test__ = False

    passed: bool
    returncode: int
    output: str
    timed_out: bool = False

    def tail(self) -> str:
        """The end of the output, for the agent and the error column."""
        lines = self.output.rstrip().splitlines()[-TAIL_LINES:]
        text = "\n".join(lines)
        return text[-TAIL_CHARS:]

    def verdict(self) -> str:
        """One line: the last line a test runner prints is its count of passes and failures."""
        if self.timed_out:
            return "timed out"
        last = next((ln.strip() for ln in reversed(self.output.splitlines()) if ln.strip()), "")
        return last[:200] or f"exit {self.returncode}"


def run_tests(
    command: TestCommand, workdir: Path, top: Path, ctx: ItemContext, timeout: float
) -> TestRun:
    """Run the test command in `workdir` (inside the worktree whose top is `top`), its process
    group killed after `timeout` seconds."""
    paths = [str(top / "src")] if (top / "src").is_dir() else []
    paths.append(str(top))
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env = {"PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1", "CI": "1"}
    result = ctx.run(
        command.argv(),
        capture_stdout=True,
        cwd=workdir,
        env=env,
        with_key=False,
        merge_stderr=True,
        timeout=timeout,
    )
    output = result.stdout.decode("utf-8", errors="replace")
    if result.timed_out:
        output += f"\nagentos: the tests were stopped after {timeout:g} s (--test-timeout)\n"
    return TestRun(result.returncode == 0 and not result.timed_out, result.returncode, output,
                   result.timed_out)  # fmt: skip
